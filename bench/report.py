#!/usr/bin/env python3
"""Turns one bench/run.sh run (PREFIX.jsonl + PREFIX.meta.json) into Markdown tables on stdout
and a latency chart at PREFIX.svg.

    report.py PREFIX                   tables on stdout, chart beside
    report.py PREFIX --update FILE     rewrite the part of FILE between
                                       <!-- bench:begin --> and <!-- bench:end -->

Every figure is the median over runs with (min–max); every comparison is computed inside each
run (hearth − direct, hearth / direct, hearth's added latency / nginx's, ...) and then
summarized the same way. Targets: direct (the upstream), nginx (a plain reverse proxy: the
floor of what any proxy costs), hearth, LiteLLM; any of the last three may be absent from a run.
A fifth target, hearth_noui (hearth with `gateway.controlUi.enabled: false`), appears only in its
own section: what the chat page costs API requests, as hearth ÷ hearth_noui per run.
Standard library only.
"""

import json
import math
import statistics
import sys
from collections import defaultdict

TARGETS = ["direct", "nginx", "hearth", "litellm"]
NAMES = {"direct": "direct (upstream)", "nginx": "nginx (proxy)", "hearth": "hearth", "litellm": "LiteLLM"}
SHORT = {"direct": "d", "nginx": "n", "hearth": "h", "litellm": "L"}
GATEWAYS = ["nginx", "hearth", "litellm"]  # everything measured against direct


def load(prefix):
    rows = defaultdict(dict)  # (scenario, target) -> run -> data
    with open(prefix + ".jsonl") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            rows[(r["scenario"], r["target"])][r["run"]] = r["data"]
    with open(prefix + ".meta.json") as f:
        meta = json.load(f)
    return rows, meta


def med(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt_num(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fmt(stat, digits=0, unit=""):
    if stat is None:
        return "–"
    m, lo, hi = stat
    if lo == hi:
        return f"{fmt_num(m, digits)}{unit}"
    return f"{fmt_num(m, digits)}{unit} ({fmt_num(lo, digits)}–{fmt_num(hi, digits)})"


def fmt_ratio(stat):
    if stat is None:
        return "–"
    m, lo, hi = stat
    d = 2 if m < 10 else (1 if m < 100 else 0)
    if lo == hi:
        return f"{m:,.{d}f}×"
    return f"{m:,.{d}f}× ({lo:,.{d}f}–{hi:,.{d}f})"


class Report:
    def __init__(self, rows, meta):
        self.rows = rows
        self.meta = meta
        self.targets = [t for t in TARGETS if any(k[1] == t for k in rows)]
        self.verdicts = []
        self.issue12 = []   # (target, ok, measured)
        self.ratio_lines = []

    def runs(self, scenario, target):
        return self.rows.get((scenario, target), {})

    def stat(self, scenario, target, key, scale=1.0):
        return med([d.get(key) * scale if d.get(key) is not None else None
                    for d in self.runs(scenario, target).values()])

    def paired_values(self, scenario, a, b, key, op, key_b=None, scenario_b=None):
        """op(a_run[key], b_run[key_b]) per run index present in both, as a list."""
        ra, rb = self.runs(scenario, a), self.runs(scenario_b or scenario, b)
        vals = []
        for run, da in ra.items():
            db = rb.get(run)
            if db is None:
                continue
            x, y = da.get(key), db.get(key_b or key)
            if x is None or y is None:
                continue
            try:
                vals.append(op(x, y))
            except ZeroDivisionError:
                pass
        return vals

    def paired(self, scenario, a, b, key, op, key_b=None, scenario_b=None):
        return med(self.paired_values(scenario, a, b, key, op, key_b, scenario_b))

    # ------------------------------------------------------------------ tables
    def header(self):
        m = self.meta
        nginx = f"{m['nginx']} (1 worker)," if m.get("nginx", "none") != "none" else "no nginx,"
        litellm = f"LiteLLM {m['litellm']} (1 worker)," if m.get("litellm", "none") != "none" else "no LiteLLM,"
        out = [
            f"Run `{m.get('stamp')}` — `{m.get('command')}` (mode {m.get('mode')}, "
            f"{m.get('runs')} runs per figure, interleaved)",
            "",
            f"- machine: {m.get('cpu')}, {m.get('ncpu')} CPUs, {m.get('mem_mb')} MB RAM; "
            f"{m.get('os')}, kernel {m.get('kernel')}; load average before the run {m.get('load_before')}",
            f"- pinning: gateway on CPU {m.get('gateway_cpus')}, upstream and load generators on CPU "
            f"{m.get('load_cpus')}; open-files limit {m.get('fd_limit')}",
            f"- versions: {m.get('hearth')} ({m.get('hearth_commit')}), {nginx} {litellm} {m.get('wrk')}, {m.get('rustc')}",
        ]
        s = m.get("sizes", {})
        out.append(
            f"- sizes: latency {s.get('lat_s')} s per run at c=1 (LiteLLM {s.get('lat_litellm_s')} s), "
            f"throughput {s.get('tput_s')} s per run, {s.get('streams')} streams of 200 chunks per run "
            f"(LiteLLM {s.get('streams_litellm')}), {s.get('hold_n')} held streams for {s.get('hold_s')} s, "
            f"warm-up {s.get('warm_s')} s before every measured run (not counted)")
        if m.get("hold_note"):
            out.append(f"- held streams {m['hold_note']}")
        return "\n".join(out) + "\n"

    def table(self, title, head, rows, note=None):
        out = [f"### {title}", ""]
        if note:
            out += [note, ""]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" for _ in head) + "|")
        for r in rows:
            out.append("| " + " | ".join(r) + " |")
        return "\n".join(out) + "\n"

    def ready(self):
        rows = []
        for t in self.targets:
            rows.append([NAMES[t], fmt(self.stat("ready", t, "ready_ms"), 1, " ms")])
        h = self.stat("ready", "hearth", "ready_ms")
        if h:
            self.verdict("ready ≤ 50 ms after start", h[0] <= 50, f"median {h[0]:.1f} ms (max {h[2]:.1f})")
        cold_up = self.stat("cold_first_up", "hearth", "us")
        cold_dead = self.stat("cold_first_dead", "hearth", "us")
        note = ("From exec to the first 200 from the readiness URL (`/health` for the upstream, "
                "the upstream's `/health` through the proxy for nginx, `/ready` for hearth, "
                "`/health/liveliness` for LiteLLM), polled every 200 µs.")
        t = self.table("Start-to-ready", ["target", "ready"], rows, note)
        if cold_up or cold_dead:
            t += ("\nFirst request after a fresh hearth start (new connections on both sides): "
                  f"to `up/m` {fmt(cold_up, 0, ' µs')}; to `dead/m` (refused, then `up/m`) "
                  f"{fmt(cold_dead, 0, ' µs')}.\n")
        return t

    def latency(self):
        keys = ["p50", "p90", "p99", "p999"]
        rows = []
        for t in self.targets:
            rows.append([NAMES[t], fmt(self.stat("lat_c1", t, "requests"))]
                        + [fmt(self.stat("lat_c1", t, k), 0, " µs") for k in keys]
                        + [fmt(self.stat("lat_c1", t, "cpu_us_per_req"), 0, " µs")])
        for g in GATEWAYS:
            if g in self.targets:
                rows.append([f"**added by {NAMES[g]}**", ""]
                            + [fmt(self.paired("lat_c1", g, "direct", k, lambda a, b: a - b), 0, " µs")
                               for k in keys] + [""])
        if "hearth" in self.targets and "nginx" in self.targets:
            rows.append(["hearth added ÷ nginx added", ""]
                        + [fmt_ratio(med(self.added_ratio("hearth", "nginx", k))) for k in keys] + [""])
        if "hearth" in self.targets and "litellm" in self.targets:
            rows.append(["LiteLLM added ÷ hearth added", ""]
                        + [fmt_ratio(med(self.added_ratio("litellm", "hearth", k))) for k in keys] + [""])
        p50 = self.paired("lat_c1", "hearth", "direct", "p50", lambda a, b: a - b)
        p99 = self.paired("lat_c1", "hearth", "direct", "p99", lambda a, b: a - b)
        if p50:
            self.verdict("added latency p50 ≤ 50 µs at c=1", p50[0] <= 50, f"median {p50[0]:.0f} µs")
        if p99:
            self.verdict("added latency p99 ≤ 100 µs at c=1", p99[0] <= 100, f"median {p99[0]:.0f} µs")
        note = ("wrk, 1 connection, keep-alive, non-streaming chat completion (~400-byte answer). "
                "Added = proxy − direct, per run, then median (min–max) over runs; a ratio of "
                "added latencies is taken per run too (a run where either is ≤ 0 is left out).")
        return self.table("Latency at concurrency 1",
                          ["target", "requests/run", "p50", "p90", "p99", "p99.9", "CPU per request"], rows, note)

    def added_ratio(self, num, den, key):
        """Per run: (num − direct) ÷ (den − direct) at percentile key, at c=1. A list. A run where
        either added latency is ≤ 0 (a proxy faster than direct: noise) gives no ratio."""
        rn, rd_, rdir = (self.runs("lat_c1", t) for t in (num, den, "direct"))
        vals = []
        for run in rn:
            if run in rd_ and run in rdir:
                added_den = rd_[run][key] - rdir[run][key]
                added_num = rn[run][key] - rdir[run][key]
                if added_den > 0 and added_num > 0:
                    vals.append(added_num / added_den)
        return vals

    def throughput(self):
        present = [t for t in TARGETS if t in self.targets]
        ratios = [(a, b) for a, b in [("nginx", "direct"), ("hearth", "direct"), ("hearth", "nginx"),
                                      ("hearth", "litellm"), ("litellm", "direct")]
                  if a in present and b in present]
        initials = " / ".join(SHORT[t] for t in present)
        rows = []
        for c in (16, 64):
            sc = f"tput_c{c}"
            row = [f"c={c}"]
            for t in present:
                row.append(fmt(self.stat(sc, t, "rps"), 0))
            for a, b in ratios:
                row.append(fmt_ratio(self.paired(sc, a, b, "rps", lambda x, y: x / y)))
            row.append(" / ".join(fmt(self.stat(sc, t, "p99"), 0, " µs") for t in present))
            errs = []
            for t in present:
                e = sum(d.get("non2xx", 0) + d.get("timeouts", 0) + d.get("connect_err", 0)
                        + d.get("read_err", 0) for d in self.runs(sc, t).values())
                errs.append(str(e))
            row.append(" / ".join(errs))
            rows.append(row)
        r64 = self.paired("tput_c64", "hearth", "direct", "rps", lambda a, b: a / b)
        if r64:
            self.verdict("throughput ≥ 60% of direct (c=64)", r64[0] >= 0.6, f"median {r64[0] * 100:.0f}%")
        l64 = self.paired("tput_c64", "hearth", "litellm", "rps", lambda a, b: a / b)
        if l64:
            self.verdict("throughput hundreds of times LiteLLM's (c=64)", l64[0] >= 100,
                         f"median {l64[0]:.0f}×")
        note = ("wrk, 1 thread, keep-alive, non-streaming; requests per second. The load generator "
                "and the upstream share one core in every case, the proxy has the other, so the "
                "direct figure is the ceiling a proxy on this box can reach and nginx's the floor "
                "of what proxying costs. Ratios are taken per run. Errors = non-2xx + timeouts + "
                "socket errors over all runs. CPU per request: the next table.")
        head = (["load"] + [NAMES[t] for t in present]
                + [f"{NAMES[a].split(' ')[0]} ÷ {NAMES[b].split(' ')[0]}" for a, b in ratios]
                + [f"p99 {initials}", f"errors {initials}"])
        return self.table("Throughput", head, rows, note)

    def cpu(self):
        present = [t for t in TARGETS if t in self.targets]
        scenarios = [("lat_c1", "c=1"), ("tput_c16", "c=16"), ("tput_c64", "c=64")]
        rows = []
        for t in present:
            rows.append([NAMES[t]] + [fmt(self.stat(sc, t, "cpu_us_per_req"), 1, " µs") for sc, _ in scenarios])
        for a, b in [("hearth", "nginx"), ("litellm", "hearth")]:
            if a in present and b in present:
                rows.append([f"{NAMES[a].split(' ')[0]} ÷ {NAMES[b].split(' ')[0]}"]
                            + [fmt_ratio(self.paired(sc, a, b, "cpu_us_per_req", lambda x, y: x / y))
                               for sc, _ in scenarios])
        note = ("The target's user + system CPU time during the measured wrk run (from "
                "`/proc/<pid>/stat` of its whole process tree: nginx's master and worker, LiteLLM's "
                "workers; for direct, the upstream's own) ÷ the requests wrk completed. Resolution: one clock "
                "tick (10 ms at the usual 100 Hz), against seconds of CPU per measured run.")
        return self.table("CPU per request", ["target"] + [label for _, label in scenarios], rows, note)

    def memory(self):
        rows = []
        for t in self.targets:
            rows.append([
                NAMES[t],
                fmt(self.stat("rss_idle", t, "rss_peak_kb", 1 / 1024), 1, " MB"),
                fmt(self.stat("rss_load_c16", t, "rss_peak_kb", 1 / 1024), 1, " MB"),
                fmt(self.stat("rss_load_c64", t, "rss_peak_kb", 1 / 1024), 1, " MB"),
                fmt(self.stat("hold", t, "rss_peak_kb", 1 / 1024), 1, " MB"),
                fmt(self.stat("rss_after", t, "rss_peak_kb", 1 / 1024), 1, " MB"),
            ])
        idle = self.stat("rss_idle", "hearth", "rss_peak_kb", 1 / 1024)
        if idle:
            self.verdict("idle RSS ≤ 15 MB", idle[0] <= 15, f"{idle[0]:.1f} MB")
        note = ("VmRSS summed over the process and its children, sampled every 100 ms; peak. "
                "\"idle\" is right after start (before any request); \"after\" is 2 s after the "
                "last scenario.")
        return self.table("Memory (RSS)",
                          ["target", "idle", "c=16 load", "c=64 load", "held streams", "after"],
                          rows, note)

    def streaming(self):
        rows = []
        for t in self.targets:
            rows.append([NAMES[t], fmt(self.stat("stream", t, "n")),
                         fmt(self.stat_nested("stream", t, "ttfc_us", "p50"), 0, " µs"),
                         fmt(self.stat_nested("stream", t, "ttfc_us", "p99"), 0, " µs"),
                         fmt(self.stat_nested("stream", t, "total_us", "p50"), 0, " µs"),
                         fmt(self.stat_nested("stream", t, "per_chunk_us", "p50"), 2, " µs"),
                         str(sum(d.get("errors", 0) for d in self.runs("stream", t).values()))])
        for g in GATEWAYS:
            if g in self.targets:
                rows.append([f"**added by {NAMES[g]}**", "",
                             fmt(self.paired_nested("stream", g, "ttfc_us", "p50"), 0, " µs"),
                             fmt(self.paired_nested("stream", g, "ttfc_us", "p99"), 0, " µs"),
                             fmt(self.paired_nested("stream", g, "total_us", "p50"), 0, " µs"),
                             fmt(self.paired_nested("stream", g, "per_chunk_us", "p50"), 2, " µs"), ""])
        note = ("One stream at a time on a keep-alive connection: 200 content chunks + finish + usage "
                "+ `[DONE]`, written by the upstream at once (so the per-chunk figure is the relay's "
                "own cost: (last byte − first byte) ÷ 201 events). Time to first chunk = request "
                "sent → first body byte.")
        return self.table("Streaming, 200 chunks",
                          ["target", "streams/run", "first chunk p50", "first chunk p99", "whole stream p50",
                           "per chunk p50", "errors"], rows, note)

    def stat_nested(self, scenario, target, key, sub):
        return med([d.get(key, {}).get(sub) for d in self.runs(scenario, target).values()])

    def paired_nested(self, scenario, g, key, sub):
        ra, rd = self.runs(scenario, g), self.runs(scenario, "direct")
        return med([ra[r][key][sub] - rd[r][key][sub] for r in ra if r in rd])

    def fallback(self):
        rows = []
        for g in ("hearth", "litellm"):
            if g not in self.targets or not self.runs("fallback_c1", g):
                continue
            rows.append([NAMES[g],
                         fmt(self.stat("fallback_c1", g, "requests")),
                         fmt(self.stat("fallback_c1", g, "p50"), 0, " µs"),
                         fmt(self.stat("fallback_c1", g, "p99"), 0, " µs"),
                         fmt(self.paired("fallback_c1", g, g, "p50", lambda a, b: a - b, scenario_b="lat_c1"), 0, " µs"),
                         fmt(self.paired("fallback_c1", g, g, "p99", lambda a, b: a - b, scenario_b="lat_c1"), 0, " µs"),
                         str(sum(d.get("non2xx", 0) for d in self.runs("fallback_c1", g).values()))])
        note = ("`model: \"dead/m\"`: the first candidate's port refuses connections, the fallback is "
                "`up/m`. wrk at c=1. Price = this run's p50/p99 − the same gateway's p50/p99 at c=1 "
                "without failover (same run index). hearth puts a refusing provider in a 30 s "
                "cooldown after the first refusal and then skips it, so its steady state prices "
                "the skip; the cold first refusal is in the start-to-ready section. LiteLLM "
                "(num_retries 0) tries the dead deployment on every request. nginx is not measured "
                "here: a plain proxy has no model-routed failover to compare.")
        return self.table("Fallback path (first candidate refuses the connection)",
                          ["gateway", "requests/run", "p50", "p99", "price p50", "price p99", "non-2xx"],
                          rows, note)

    def hold(self):
        rows = []
        ok_all = True
        n_target = None
        for t in self.targets:
            runs = self.runs("hold", t)
            if not runs:
                continue
            idle = self.runs("rss_idle", t).get(1, {}).get("rss_peak_kb")
            per_stream = med([(d["rss_at_peak_open_kb"] - (idle if idle is not None else d["rss_before_kb"]))
                              / d["peak_open"] for d in runs.values() if d.get("peak_open")])
            bad = [d["n"] - d["ok"] for d in runs.values()]
            rows.append([NAMES[t], fmt(self.stat("hold", t, "n")), fmt(self.stat("hold", t, "ok")),
                         fmt(self.stat("hold", t, "peak_open")),
                         str(sum(bad)),
                         str(sum(d.get("stalls", 0) for d in runs.values())),
                         fmt(self.stat("hold", t, "max_gap_ms"), 0, " ms"),
                         fmt(self.stat_nested("hold", t, "first_event_us", "p99"), 0, " µs"),
                         fmt(per_stream, 1, " KB"),
                         str(len(runs))])
            if t == "hearth":
                n_target = self.stat("hold", t, "n")
                ok_all = all(d["ok"] == d["n"] and d.get("stalls", 0) == 0 for d in runs.values())
        if n_target:
            n = n_target[0]
            ok = ok_all if n >= 10000 else (None if ok_all else False)
            detail = f"{int(n):,} streams per run: " + ("all completed, no stall" if ok_all else "some failed or stalled")
            if n < 10000:
                detail += " (fewer than 10,000 here)"
            self.verdict("10,000 concurrent SSE streams with no stall", ok, detail)
        note = ("All streams opened at once (at most 64 between connect and response head), each "
                "one event a second until `[DONE]`. Completed = 200 + every event + `[DONE]`; "
                "failed = refused, error status, cut short or not finished before the deadline; "
                "stall = a gap over 2.5 s between events. Memory per stream = (RSS when the most "
                "streams were open − idle RSS at start) ÷ streams open: an upper bound, since it "
                "includes what the allocator kept from earlier scenarios; for `direct` it is the "
                "bench upstream's own cost (one thread per connection).")
        return self.table("Held-open streams",
                          ["target", "streams", "completed", "peak open", "failed", "stalls",
                           "longest gap", "first event p99", "memory per stream", "runs"], rows, note)

    def control_ui(self):
        """Issue 16: the chat page adds no measurable cost to API requests. hearth (page on, the
        default) against the same binary and config with the page off, same run, per run."""
        if not self.runs("lat_c1", "hearth_noui"):
            return ""
        div = lambda a, b: a / b  # noqa: E731
        metrics = [("lat_c1", "p50", "latency at c=1, p50", False),
                   ("lat_c1", "p99", "latency at c=1, p99", False),
                   ("tput_c16", "rps", "throughput at c=16", True),
                   ("tput_c64", "rps", "throughput at c=64", True),
                   ("tput_c64", "cpu_us_per_req", "CPU per request at c=64", False)]
        rows = []
        worst, judged = 0.0, 0
        for sc, key, label, _higher in metrics:
            on, off = self.stat(sc, "hearth", key), self.stat(sc, "hearth_noui", key)
            vals = self.paired_values(sc, "hearth", "hearth_noui", key, div)
            r = med(vals)
            unit = "" if key == "rps" else " µs"
            digits = 1 if key == "cpu_us_per_req" else 0
            # A figure whose page-off runs alone vary by more than 15% cannot show a 5% cost.
            spread = off[2] / off[1] if off and off[1] > 0 else None
            if r and spread is not None and spread <= 1.15:
                worst = max(worst, abs(r[0] - 1))
                judged += 1
                note_cell = fmt_ratio(r)
            else:
                note_cell = (f"{fmt_ratio(r)}; not judged: the page-off runs alone vary "
                             f"{spread:.2f}×" if spread else fmt_ratio(r))
            rows.append([label, fmt(on, digits, unit), fmt(off, digits, unit), note_cell])
        ok = judged > 0 and worst <= 0.05
        rows.append(["verdict: every judged median ratio within 1.00 ± 0.05",
                     "**met**" if ok else ("**not met**" if judged else "not shown"), "",
                     f"largest difference {worst * 100:.1f}% over {judged} figures"])
        note = ("The same binary and generated config, started twice; the control adds "
                "`gateway: { controlUi: { enabled: false } }` (and bench/run.sh checks that it then "
                "serves no page at `/`). Both run interleaved with the other targets in the latency "
                "and throughput scenarios; ratio = page on ÷ page off, per run, then median (min–max). "
                "\"No measurable cost\" here means every median ratio is within 5% of 1, judged on the "
                "figures this box measures to within 15% (the page-off runs' own max ÷ min); a "
                "figure noisier than that (p99 at c=1 on a shared VM) is shown and not judged.")
        return self.table("The chat page's cost to API requests (issue 16)",
                          ["figure", "hearth (page on)", "hearth (page off)", "on ÷ off"], rows, note)

    def verdict(self, what, ok, detail):
        self.verdicts.append((what, ok, detail))

    def issue12_table(self):
        """Issue 12's "Done when" bench line: hearth against direct and against nginx, same run."""
        lines = []
        def line(label, vals, ratio=True, unit="", digits=0):
            stat = med(vals)
            if stat is not None:
                lines.append(f"- {label}: {fmt_ratio(stat) if ratio else fmt(stat, digits, unit)}")
            return vals
        def target(what, vals, limit, higher, unit_fmt, needs=None):
            missing = [t for t in (needs or []) if t not in self.targets]
            if missing:
                self.issue12.append((what, None, f"not measured: no {', '.join(missing)} in this run"))
                return
            stat = med(vals)
            if stat is None:
                self.issue12.append((what, None, "no data"))
                return
            good = sum(1 for v in vals if (v >= limit if higher else v <= limit))
            self.issue12.append((what, stat[0] >= limit if higher else stat[0] <= limit,
                                 f"median {unit_fmt(stat)}; met in {good} of {len(vals)} runs"))
        div = lambda a, b: a / b  # noqa: E731
        h_d = line("hearth throughput at c=64 ÷ direct",
                   self.paired_values("tput_c64", "hearth", "direct", "rps", div))
        line("nginx throughput at c=64 ÷ direct", self.paired_values("tput_c64", "nginx", "direct", "rps", div))
        line("hearth throughput at c=64 ÷ nginx", self.paired_values("tput_c64", "hearth", "nginx", "rps", div))
        ratios = {}
        for k in ("p50", "p99"):
            for g in ("nginx", "hearth"):
                line(f"{NAMES[g]} added latency at c=1, {k}",
                     self.paired_values("lat_c1", g, "direct", k, lambda a, b: a - b), ratio=False, unit=" µs")
            ratios[k] = line(f"hearth added latency ÷ nginx added latency at c=1, {k}",
                             self.added_ratio("hearth", "nginx", k))
        for t in TARGETS:
            if t in self.targets:
                line(f"CPU per request at c=64, {NAMES[t]}",
                     [d.get("cpu_us_per_req") for d in self.runs("tput_c64", t).values()], ratio=False, unit=" µs",
                     digits=1)
        pct = lambda s: f"{s[0] * 100:.0f}% ({s[1] * 100:.0f}–{s[2] * 100:.0f}%)"  # noqa: E731
        target("hearth throughput at c=64 ≥ 50% of direct", h_d, 0.5, True, pct, ["hearth"])
        for k in ("p50", "p99"):
            target(f"hearth added latency at c=1 ≤ 1.25× nginx's, {k}", ratios[k], 1.25, False,
                   fmt_ratio, ["hearth", "nginx"])
        target("hearth CPU per request under load (c=64) ≤ 30 µs",
               [d.get("cpu_us_per_req") for d in self.runs("tput_c64", "hearth").values()
                if d.get("cpu_us_per_req") is not None], 30, False, lambda s: fmt(s, 1, " µs"), ["hearth"])
        word = {True: "**met**", False: "**not met**", None: "not shown"}
        rows = [[w, word[ok], d] for w, ok, d in self.issue12]
        note = ("Each ratio is taken inside one run (same run index, interleaved targets), then "
                "median (min–max) over the runs; a verdict is on the median, with how many runs "
                "met it on their own. A run where either added latency is ≤ 0 (noise: a proxy "
                "faster than direct) has no ratio and is left out. CPU per request under load = at c=64.\n\n" + "\n".join(lines))
        return self.table("Issue 12 targets (hearth against direct and nginx, this run)",
                          ["target", "verdict", "measured"], rows, note)

    def verdict_table(self):
        word = {True: "**met**", False: "**not met**", None: "not shown (run too small)"}
        rows = [[w, word[ok], d] for w, ok, d in self.verdicts]
        return self.table("DESIGN.md targets (hearth, this run)", ["target", "verdict", "measured"], rows)

    def smoke(self):
        out = ["### Smoke run", ""]
        for (sc, t), runs in sorted(self.rows.items()):
            for r, d in runs.items():
                out.append(f"- {sc} / {t}: `{json.dumps(d)}`")
        return "\n".join(out) + "\n"

    def render(self):
        parts = [self.header()]
        if self.meta.get("mode") == "smoke":
            parts.append(self.ready())
            parts.append(self.smoke())
            return "\n".join(parts)
        parts += [self.ready(), self.latency(), self.throughput(), self.cpu(), self.streaming(),
                  self.fallback(), self.hold(), self.memory()]
        ui = self.control_ui()
        if ui:
            parts.append(ui)
        parts.insert(1, self.verdict_table())
        parts.insert(2, self.issue12_table())
        return "\n".join(parts)

    # ------------------------------------------------------------------ chart
    def svg(self):
        keys = [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9")]
        colors = {"direct": "#7f8c8d", "nginx": "#27ae60", "hearth": "#d35400", "litellm": "#2980b9"}
        data = {t: [self.stat("lat_c1", t, k) for k, _ in keys] for t in self.targets}
        vals = [s[0] for v in data.values() for s in v if s]
        if not vals:
            return None
        lo = 10 ** math.floor(math.log10(max(min(vals), 1)))
        hi = 10 ** math.ceil(math.log10(max(vals)))
        w, h, left, top, bottom = 720, 360, 70, 40, 50
        ph = h - top - bottom
        def y(v):
            return top + ph - (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
               f'<rect width="{w}" height="{h}" fill="white"/>',
               f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">Latency at concurrency 1 '
               f'(µs, log scale; median of {self.meta.get("runs")} runs, whiskers min–max)</text>']
        d = lo
        while d <= hi:
            out.append(f'<line x1="{left}" x2="{w - 10}" y1="{y(d):.1f}" y2="{y(d):.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{left - 6}" y="{y(d) + 4:.1f}" text-anchor="end">{d:,.0f}</text>')
            d *= 10
        group = (w - left - 10) / len(keys)
        bw = group * 0.8 / len(self.targets)
        for i, (_, label) in enumerate(keys):
            gx = left + i * group + group * 0.1
            out.append(f'<text x="{gx + group * 0.4:.1f}" y="{h - bottom + 18}" text-anchor="middle">{label}</text>')
            for j, t in enumerate(self.targets):
                s = data[t][i]
                if not s:
                    continue
                x = gx + j * bw
                out.append(f'<rect x="{x:.1f}" y="{y(s[0]):.1f}" width="{bw - 2:.1f}" height="{top + ph - y(s[0]):.1f}" fill="{colors[t]}"/>')
                cx = x + (bw - 2) / 2
                out.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(s[1]):.1f}" y2="{y(s[2]):.1f}" stroke="black"/>')
                out.append(f'<text x="{cx:.1f}" y="{y(s[0]) - 4:.1f}" text-anchor="middle" font-size="10">{s[0]:,.0f}</text>')
        for j, t in enumerate(self.targets):
            lx = left + j * 170
            out.append(f'<rect x="{lx}" y="{h - 22}" width="12" height="12" fill="{colors[t]}"/>')
            out.append(f'<text x="{lx + 18}" y="{h - 12}">{NAMES[t]}</text>')
        out.append("</svg>")
        return "\n".join(out) + "\n"


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    prefix = args[0]
    rows, meta = load(prefix)
    report = Report(rows, meta)
    text = report.render()
    chart = report.svg() if meta.get("mode") != "smoke" else None
    stamp = meta.get("stamp")
    if chart:
        with open(prefix + ".svg", "w") as f:
            f.write(chart)
        text += f"\n![latency percentiles at c=1]({stamp}.svg)\n"
    if "--update" in args:
        target = args[args.index("--update") + 1]
        with open(target) as f:
            doc = f.read()
        begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
        if begin not in doc or end not in doc:
            print(f"report.py: {target} has no {begin} … {end} section", file=sys.stderr)
            sys.exit(1)
        body = text.replace(f"({stamp}.svg)", f"(bench/results/{stamp}.svg)")
        body = body.replace("### ", "#### ")
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        with open(target, "w") as f:
            f.write(head + begin + "\n\n" + body + "\n" + end + tail)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
