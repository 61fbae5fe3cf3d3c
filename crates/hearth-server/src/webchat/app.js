// hearth's chat page: talks to the gateway over its own API (`/v1/models`,
// `/v1/chat/completions`), with the gateway token from this tab's session storage. Model
// output is only ever set as text (`textContent`), never as HTML: a reply that holds markup
// shows the markup.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "hearth.token";
// `session`: the agent session this conversation lives in (agent targets only: `hearth`,
// `hearth/<agentId>`); direct model refs keep the conversation in the page.
const state = { messages: [], running: null, session: null, ws: null, pending: new Map(), next: 0 };

function isAgent(model) { return model === "hearth" || model.startsWith("hearth/"); }

// The WebSocket control plane (OpenClaw's protocol), for the session list and history.
function control() {
  if (state.ws) return state.ws;
  state.ws = new Promise((resolve, reject) => {
    const socket = new WebSocket(location.origin.replace(/^http/, "ws") + "/");
    socket.onmessage = (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame.event === "connect.challenge") {
        const token = sessionStorage.getItem(TOKEN_KEY);
        socket.send(JSON.stringify({ type: "req", id: "connect", method: "connect", params: {
          minProtocol: 4, maxProtocol: 4,
          client: { id: "hearth-webchat", version: "1", platform: "web", mode: "webchat" },
          role: "operator", scopes: ["operator.read", "operator.write"], auth: token ? { token } : {} } }));
        return;
      }
      if (frame.type !== "res") return;
      if (frame.id === "connect") {
        if (frame.ok) resolve(socket); else { state.ws = null; reject(new Error((frame.error && frame.error.message) || "refused")); }
        return;
      }
      const waiter = state.pending.get(frame.id);
      if (!waiter) return;
      state.pending.delete(frame.id);
      if (frame.ok) waiter.resolve(frame.payload); else waiter.reject(new Error((frame.error && frame.error.message) || "error"));
    };
    socket.onclose = () => { state.ws = null; };
    socket.onerror = () => reject(new Error("the control connection failed"));
  });
  return state.ws;
}

async function rpc(method, params) {
  const socket = await control();
  const id = "r" + (++state.next);
  return new Promise((resolve, reject) => {
    state.pending.set(id, { resolve, reject });
    socket.send(JSON.stringify({ type: "req", id, method, params }));
  });
}

async function loadSessions() {
  let list;
  try { list = await rpc("sessions.list", { limit: 50 }); } catch { return; }
  const ul = $("session-list");
  ul.textContent = "";
  for (const s of list.sessions || []) {
    const li = el("li");
    const button = el("button", "", s.key);
    button.type = "button";
    button.dataset.key = s.key;
    button.dataset.agent = s.agentId;
    if (state.session === s.key) button.setAttribute("aria-current", "true");
    const cost = s.costUsd ? " · $" + s.costUsd.toFixed(4) : "";
    button.append(el("span", "when", new Date(s.updatedAt).toLocaleString() + " · " + s.entryCount + " entries" + cost));
    button.addEventListener("click", () => openSession(s.key, s.agentId, s.costUsd));
    li.append(button);
    const actions = el("div", "actions");
    for (const [label, method] of [["reset", "sessions.reset"], ["compact", "sessions.compact"]]) {
      const action = el("button", "action", label);
      action.type = "button";
      action.dataset.action = label;
      action.addEventListener("click", async () => {
        action.disabled = true;
        try {
          const done = await rpc(method, { key: s.key, agentId: s.agentId });
          status(s.key + ": " + (method === "sessions.reset" ? "reset" :
            done.compacted ? done.summarizedMessages + " messages summarized" : "nothing to compact"));
          if (state.session === s.key) await openSession(s.key, s.agentId, s.costUsd); else loadSessions();
        } catch (e) {
          status(s.key + ": " + e.message);
        } finally {
          action.disabled = false;
        }
      });
      actions.append(action);
    }
    li.append(actions);
    ul.append(li);
  }
}

async function openSession(key, agentId, cost) {
  const history = await rpc("chat.history", { sessionKey: key, agentId, limit: 200 });
  state.session = key;
  state.messages = [];
  state.costBefore = cost || 0;
  $("log").textContent = "";
  const target = "hearth/" + agentId;
  const select = $("model");
  if ([...select.options].some((o) => o.value === target)) select.value = target;
  for (const m of history.messages || []) {
    if (m.role !== "user" && m.role !== "assistant") continue;
    const text = (m.content || []).filter((b) => b.type === "text").map((b) => b.text).join("");
    const node = el("div", "text" + (m.role === "assistant" ? " reply" : ""));
    if (m.role === "assistant") renderMarkdown(node, text); else node.textContent = text;
    turn(m.role).append(node);
  }
  loadSessions();
}

// The status view: every provider and model of the chain, refreshed while it is open.
async function loadStatus() {
  let response;
  try {
    response = await fetch(base() + "hearth/status?refresh=1", { headers: headers() });
  } catch (e) {
    $("status-view").textContent = "the gateway does not answer: " + e.message;
    return;
  }
  if (response.status === 401) return needAuth("this gateway needs its token");
  const body = await response.json();
  const view = $("status-view");
  view.textContent = "";
  view.append(el("p", "meta", "default chain: " + (body.chain || []).join(" → ")));
  for (const p of body.providers || []) {
    const box = el("article", "provider");
    box.dataset.provider = p.id;
    const title = el("h3", "", p.id + " ");
    if (p.local) {
      const up = p.reachable === true;
      const mark = el("span", up ? "up reach" : "down reach", up ? "reachable" : "not reachable");
      title.append(mark);
    } else {
      title.append(el("span", "meta", "hosted · key " + p.key.state));
    }
    box.append(title, el("div", "meta", p.api + " · " + p.baseUrl + (p.server ? " · " + p.server : "") +
      (p.latencyMs != null ? " · " + p.latencyMs + " ms" : "")));
    if (p.localService) {
      const svc = p.localService;
      box.append(el("div", "meta", "local service: " + (svc.running
        ? "running" + (svc.pid ? " (pid " + svc.pid + ")" : " (not started by hearth)") + ", " + svc.leases + " in use"
        : "not running; hearth starts it on the first request")));
    }
    if (p.hint) box.append(el("div", "notice", p.hint));
    if (p.key && p.key.problem) box.append(el("div", "error", p.key.problem));
    const table = el("table");
    const head = el("tr");
    for (const h of ["model", "configured window", "served window", "state"]) head.append(el("th", "", h));
    table.append(head);
    const rows = (p.models || []).map((m) => [m.id, m.contextWindow, m.servedWindow, m.state]);
    for (const s of p.served || []) {
      if (!(p.models || []).some((m) => m.id === s.id)) rows.push([s.id + " (served)", null, s.contextWindow, s.state]);
    }
    for (const r of rows) {
      const tr = el("tr");
      for (const c of r) tr.append(el("td", "", c == null ? "–" : String(c)));
      table.append(tr);
    }
    box.append(table);
    for (const c of (body.cooldowns || []).filter((c) => c.provider === p.id)) {
      box.append(el("div", "notice", "cooling down" + (c.model ? " " + c.model : "") + ": " + c.reason +
        ", " + Math.ceil(c.remaining_ms / 1000) + " s left"));
    }
    view.append(box);
  }
}

function toggleStatus() {
  const open = $("status-view").hidden;
  $("status-view").hidden = !open;
  $("log").hidden = open;
  $("status-toggle").setAttribute("aria-pressed", String(open));
  clearInterval(state.statusTimer);
  if (open) {
    loadStatus();
    state.statusTimer = setInterval(loadStatus, 3000);
  }
}

function newChat() {
  state.session = null;
  state.costBefore = 0;
  state.messages = [];
  $("log").textContent = "";
  loadSessions();
}

function headers() {
  const h = { "content-type": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) h.authorization = "Bearer " + token;
  return h;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function status(text) { $("status").textContent = text; }

// Markdown, safely: the reply is parsed into DOM nodes made here (text nodes, `pre`, `code`,
// `strong`, `em`, `a` with an http(s) address), never into HTML, so markup in model output
// stays text. Fenced code blocks, inline code, **bold**, *italic*, [links](https://…).
function renderMarkdown(node, text) {
  node.textContent = "";
  const parts = text.split(/```/);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      const pre = el("pre");
      const newline = part.indexOf("\n");
      // The first line of a fence is its language: not shown.
      pre.append(el("code", "", newline >= 0 && /^[\w+-]*$/.test(part.slice(0, newline)) ? part.slice(newline + 1) : part));
      node.append(pre);
    } else {
      inline(node, part);
    }
  });
}

function inline(node, text) {
  const pattern = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\n]+\*)|(\[[^\]\n]+\]\(https?:\/\/[^\s)]+\))/g;
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    if (m.index > last) node.append(document.createTextNode(text.slice(last, m.index)));
    const token = m[0];
    if (m[1]) node.append(el("code", "", token.slice(1, -1)));
    else if (m[2]) node.append(el("strong", "", token.slice(2, -2)));
    else if (m[3]) node.append(el("em", "", token.slice(1, -1)));
    else {
      const close = token.indexOf("](");
      const a = el("a", "", token.slice(1, close));
      a.href = token.slice(close + 2, -1);
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      node.append(a);
    }
    last = m.index + token.length;
  }
  if (last < text.length) node.append(document.createTextNode(text.slice(last)));
}

function needAuth(why) {
  $("auth").hidden = false;
  $("composer").hidden = true;
  status(why);
  $("token").focus();
}

async function loadModels() {
  let response;
  try {
    response = await fetch(base() + "v1/models", { headers: headers() });
  } catch (e) {
    status("the gateway does not answer: " + e.message);
    return;
  }
  if (response.status === 401) return needAuth("this gateway needs its token");
  if (!response.ok) return status("models: HTTP " + response.status);
  const body = await response.json();
  const select = $("model");
  const keep = select.value;
  select.textContent = "";
  state.costs = {};
  for (const m of body.data || []) {
    if (m.cost) state.costs[m.id] = m.cost;
    const label = m.id + (m.state && m.state !== "loaded" ? " (" + m.state + ")" : "");
    const option = el("option", "", label);
    option.value = m.id;
    select.append(option);
  }
  if (keep) select.value = keep;
  $("auth").hidden = true;
  $("composer").hidden = false;
  status((body.data || []).length + " models");
  loadSessions();
}

// The API lives at the gateway's root, whatever the page's base path.
function base() { return location.origin + "/"; }

function turn(role) {
  const node = el("section", "turn " + role);
  $("log").append(node);
  return node;
}

async function send(text) {
  const user = turn("user");
  user.append(el("div", "text", text));
  state.messages.push({ role: "user", content: text });
  const bot = turn("assistant");
  const reasoning = el("details", "reasoning");
  reasoning.hidden = true;
  reasoning.append(el("summary", "", "reasoning"), el("div", "text"));
  const reply = el("div", "text reply");
  const meta = el("div", "meta");
  bot.append(reasoning, reply, meta);
  const controller = new AbortController();
  state.running = controller;
  $("stop").hidden = false;
  $("send").disabled = true;
  const model = $("model").value;
  const agent = isAgent(model);
  const sent = { ...headers() };
  if (agent) {
    // A new chat with an agent gets a session of its own; the agent keeps its history.
    if (!state.session) state.session = "web-" + Date.now().toString(36);
    sent["x-hearth-session-key"] = state.session;
  }
  let answer = "";
  try {
    const response = await fetch(base() + "v1/chat/completions", {
      method: "POST",
      headers: sent,
      signal: controller.signal,
      body: JSON.stringify({ model, stream: true, stream_options: { include_usage: true },
        messages: agent ? [{ role: "user", content: text }] : state.messages }),
    });
    if (response.status === 401) { bot.remove(); needAuth("the token was refused"); return; }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      bot.append(el("div", "error", (body.error && body.error.message) || "HTTP " + response.status));
      return;
    }
    const provider = response.headers.get("x-hearth-provider");
    const answered = provider ? provider + "/" + response.headers.get("x-hearth-model") : null;
    const notices = response.headers.get("x-hearth-notice");
    if (notices) bot.append(el("div", "notice", notices));
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let usage = null;
    let answeredInStream = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of frame.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          let chunk;
          try { chunk = JSON.parse(data); } catch { continue; }
          if (chunk.error) { bot.append(el("div", "error", chunk.error.message || "error")); continue; }
          if (chunk.hearth_notice) bot.append(el("div", "notice", chunk.hearth_notice));
          if (chunk.usage) usage = chunk.usage;
          // A slow start sends its headers before the answer is known: the chunks name it.
          if (chunk.model && !answered) answeredInStream = chunk.model;
          const delta = (chunk.choices && chunk.choices[0] && chunk.choices[0].delta) || {};
          const thought = delta.reasoning_content || delta.reasoning;
          if (thought) {
            reasoning.hidden = false;
            reasoning.lastChild.textContent += thought;
          }
          if (delta.content) {
            answer += delta.content;
            renderMarkdown(reply, answer);
          }
          for (const call of delta.tool_calls || []) {
            if (call.function && call.function.name) bot.append(el("div", "tool", "tool call: " + call.function.name));
          }
        }
      }
    }
    state.messages.push({ role: "assistant", content: answer });
    const parts = [];
    if (answered || answeredInStream) parts.push("answered by " + (answered || answeredInStream));
    if (usage) parts.push(usage.prompt_tokens + " in / " + usage.completion_tokens + " out tokens");
    // A direct model's turn: its price from the catalog (USD per million tokens); an agent
    // turn's cost comes from its session's totals below.
    const price = !agent && state.costs && state.costs[answered || model];
    if (usage && price) {
      const usd = (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1e6;
      if (usd > 0) parts.push("$" + usd.toFixed(4));
    }
    meta.textContent = parts.join(" · ");
    if (agent) {
      // The gateway names the session `agent:<id>:<key>`; its cost so far, less what it was
      // before this turn, is this turn's.
      const listed = await rpc("sessions.list", { limit: 50 }).catch(() => null);
      const full = listed && (listed.sessions || []).find((s) => s.key === state.session || s.key.endsWith(":" + state.session));
      if (full) {
        state.session = full.key;
        const spent = (full.costUsd || 0) - (state.costBefore || 0);
        state.costBefore = full.costUsd || 0;
        if (spent > 0) meta.textContent += " · $" + spent.toFixed(4);
      }
      loadSessions();
    }
  } catch (e) {
    if (e.name === "AbortError") bot.append(el("div", "notice", "stopped"));
    else bot.append(el("div", "error", "the gateway does not answer: " + e.message));
  } finally {
    state.running = null;
    $("stop").hidden = true;
    $("send").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("input").value;
    if (!text.trim() || state.running) return;
    $("input").value = "";
    send(text);
  });
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => state.running && state.running.abort());
  $("new").addEventListener("click", newChat);
  $("status-toggle").addEventListener("click", toggleStatus);
  $("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    loadModels();
  });
  loadModels();
});
