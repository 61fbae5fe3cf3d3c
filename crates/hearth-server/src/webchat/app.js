// hearth's chat page: talks to the gateway over its own API (`/v1/models`,
// `/v1/chat/completions`), with the gateway token from this tab's session storage. Model
// output is only ever set as text (`textContent`), never as HTML: a reply that holds markup
// shows the markup.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "hearth.token";
const state = { messages: [], running: null };

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
  for (const m of body.data || []) {
    const label = m.id + (m.state && m.state !== "loaded" ? " (" + m.state + ")" : "");
    const option = el("option", "", label);
    option.value = m.id;
    select.append(option);
  }
  if (keep) select.value = keep;
  $("auth").hidden = true;
  $("composer").hidden = false;
  status((body.data || []).length + " models");
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
  let answer = "";
  try {
    const response = await fetch(base() + "v1/chat/completions", {
      method: "POST",
      headers: headers(),
      signal: controller.signal,
      body: JSON.stringify({ model, stream: true, stream_options: { include_usage: true },
        messages: state.messages }),
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
            reply.textContent = answer;
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
    meta.textContent = parts.join(" · ");
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
  $("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    loadModels();
  });
  loadModels();
});
