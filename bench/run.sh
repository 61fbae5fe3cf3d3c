#!/usr/bin/env bash
# hearth benchmark (issues 7 and 12): the same load, in one run, against
#   (a) the upstream directly, (b) a plain nginx reverse proxy (Debian nginx, keep-alive upstream:
#   the floor of what any proxy costs on this box), (c) hearth in direct mode (`model: "up/m"`),
#   (d) LiteLLM proxy, all in front of the same fixed-response upstream (bench/tools: bench-upstream);
#   and (e) hearth again with its chat page off (`gateway.controlUi.enabled: false`) in the latency
#   and throughput scenarios, so the page's cost to API requests is a ratio in the same run.
#
#   bench/run.sh            full run (every scenario at full size; about 35 minutes on 2 cores)
#   bench/run.sh --quick    the same scenarios, shorter (under 10 minutes on 2 cores, once
#                           LiteLLM is installed)
#   bench/run.sh --smoke    seconds: starts the upstream and hearth (and nginx when it is
#                           installed), sends a few requests of every kind, stops them, checks
#                           they are gone. No wrk, no LiteLLM, no network, installs nothing.
#                           Used by crates/hearth/tests/bench_smoke.rs.
#
# Options: --skip-litellm (no LiteLLM), --skip-nginx (no nginx proxy), --skip-ui-off (no second
# hearth with the chat page off), --no-update (do not
# rewrite the generated section of BENCHMARKS.md), --out-dir DIR (where results go; default
# bench/results).
#
# Environment: HEARTH_BIN (a prebuilt hearth; default: cargo build --release -p hearth),
# NGINX_BIN (default: nginx on PATH, else /usr/sbin/nginx; installed with apt-get if missing),
# CARGO_TARGET_DIR, HEARTH_BENCH_CACHE (default ~/.cache/hearth-bench), LITELLM_VERSION
# (default 1.106.2; 1.82.7 and 1.82.8 are refused), BENCH_RUNS (default 3),
# BENCH_GATEWAY_CPUS / BENCH_LOAD_CPUS (taskset lists; default: gateway on CPU 1, upstream and
# load generators on CPU 0).
#
# Method (see BENCHMARKS.md): every figure is the median of BENCH_RUNS runs with min–max;
# runs are interleaved (direct, nginx, hearth, LiteLLM, direct, …) so drift hits all alike;
# every comparison is a ratio or difference taken inside one run, then the median of those.
# Each measured run follows its own warm-up, which is not counted.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
MODE=full
WITH_LITELLM=1
WITH_NGINX=1
WITH_UI_OFF=1
UPDATE=1
OUT_DIR="$BENCH/results"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) MODE=quick ;;
        --smoke) MODE=smoke; WITH_LITELLM=0; WITH_UI_OFF=0; UPDATE=0 ;;
        --skip-litellm) WITH_LITELLM=0 ;;
        --skip-nginx) WITH_NGINX=0 ;;
        --skip-ui-off) WITH_UI_OFF=0 ;;
        --no-update) UPDATE=0 ;;
        --out-dir) OUT_DIR="$2"; shift ;;
        -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- sizes per mode
RUNS="${BENCH_RUNS:-3}"
case "$MODE" in
    full)
        WARM_S=2; LAT_S=10; LAT_LITELLM_S=130   # >= 10,000 requests at c=1, LiteLLM included
        TPUT_S=10; STREAMS=1000; STREAMS_LITELLM=200
        HOLD_N=10000; HOLD_S=30; HOLD_LITELLM_TIMEOUT=180; HOLD_RUNS_LITELLM=$RUNS
        FALLBACK_S=10; READY_RUNS=5 ;;
    quick)
        WARM_S=1; LAT_S=4; LAT_LITELLM_S=4
        TPUT_S=4; STREAMS=300; STREAMS_LITELLM=20
        HOLD_N=2000; HOLD_S=10; HOLD_LITELLM_TIMEOUT=40; HOLD_RUNS_LITELLM=1
        FALLBACK_S=3; READY_RUNS=3 ;;
    smoke)
        RUNS=1; STREAMS=5; HOLD_N=20; HOLD_S=2; READY_RUNS=1 ;;
esac

# ---------------------------------------------------------------- setup
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CACHE="${HEARTH_BENCH_CACHE:-$HOME/.cache/hearth-bench}"

# apt_install PACKAGE: the Debian package, as root or through sudo.
apt_install() {
    if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
        log "installing $1 (Debian package)"
        apt-get install -y -q "$1" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "$1" >/dev/null; }
    elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then
        log "installing $1 (Debian package, sudo)"
        sudo apt-get install -y -q "$1" >/dev/null
    else
        return 1
    fi
}

if [[ "$MODE" != smoke ]] && ! command -v wrk >/dev/null; then
    apt_install wrk || die "wrk not found: install it (Debian: apt-get install wrk)"
fi

# nginx: /usr/sbin is not on a normal user's PATH on Debian. The smoke run never installs it
# (no network): it takes nginx if it is there and says so when it is not.
find_nginx() {
    NGINX_BIN="${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}"
    [[ -x "$NGINX_BIN" ]]
}
if [[ "$WITH_NGINX" == 1 ]] && ! find_nginx; then
    if [[ "$MODE" == smoke ]]; then
        log "nginx not installed: smoke run without the nginx target (apt-get install nginx to include it)"
        WITH_NGINX=0
    else
        # The Debian package also starts its own service on port 80 where an init system runs;
        # it stays idle and is not one of the measured targets.
        unset NGINX_BIN
        apt_install nginx && find_nginx || die "nginx not found: install it (Debian: apt-get install nginx) or pass --skip-nginx"
    fi
fi
[[ "$WITH_NGINX" == 1 ]] || NGINX_BIN=""

TOOLS_PROFILE=release
[[ "$MODE" == smoke ]] && TOOLS_PROFILE=debug
log "building the bench tools ($TOOLS_PROFILE)"
if [[ "$TOOLS_PROFILE" == release ]]; then
    "${CARGO:-cargo}" build --quiet --release --locked --offline --manifest-path "$BENCH/tools/Cargo.toml" 2>/dev/null \
        || "${CARGO:-cargo}" build --quiet --release --locked --manifest-path "$BENCH/tools/Cargo.toml"
else
    "${CARGO:-cargo}" build --quiet --locked --offline --manifest-path "$BENCH/tools/Cargo.toml" 2>/dev/null \
        || "${CARGO:-cargo}" build --quiet --locked --manifest-path "$BENCH/tools/Cargo.toml"
fi
TOOLS="$CARGO_TARGET_DIR/$TOOLS_PROFILE"
UPSTREAM_BIN="$TOOLS/bench-upstream"
CLIENT="$TOOLS/bench-client"

if [[ -z "${HEARTH_BIN:-}" ]]; then
    log "building hearth (release)"
    (cd "$ROOT" && "${CARGO:-cargo}" build --quiet --release -p hearth)
    HEARTH_BIN="$CARGO_TARGET_DIR/release/hearth"
fi
[[ -x "$HEARTH_BIN" ]] || die "hearth binary not found at $HEARTH_BIN"

LITELLM_BIN=""
if [[ "$WITH_LITELLM" == 1 ]]; then
    LITELLM_BIN="$("$BENCH/litellm-env.sh" | tail -n 1)"
fi

# ---------------------------------------------------------------- machine
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
NCPU=$(nproc)
if [[ -n "${BENCH_GATEWAY_CPUS:-}" || $NCPU -ge 2 ]]; then
    GW_CPUS="${BENCH_GATEWAY_CPUS:-1}"
    LOAD_CPUS="${BENCH_LOAD_CPUS:-0}"
    GW_PIN=(taskset -c "$GW_CPUS")
    LOAD_PIN=(taskset -c "$LOAD_CPUS")
else
    GW_CPUS=any; LOAD_CPUS=any; GW_PIN=(); LOAD_PIN=()
fi
command -v taskset >/dev/null || { GW_PIN=(); LOAD_PIN=(); GW_CPUS=any; LOAD_CPUS=any; }

# Each held stream costs a proxy two descriptors (downstream and upstream).
HOLD_MAX=$(( (FD_LIMIT - 256) / 2 ))
HOLD_NOTE=""
if (( HOLD_N > HOLD_MAX )); then
    HOLD_NOTE="capped at $HOLD_MAX streams: the open-files limit here is $FD_LIMIT (hard), and a proxy needs two descriptors per stream"
    HOLD_N=$HOLD_MAX
fi

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/hearth-bench.XXXXXX")"
RAW="$OUT_DIR/$STAMP.jsonl"
: > "$RAW"

# ---------------------------------------------------------------- processes
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid" 2>/dev/null || true; done
    if [[ "$MODE" == smoke ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

alive() { [[ -e /proc/$1 ]] && ! grep -q '^[0-9]* ([^)]*) [ZX]' "/proc/$1/stat" 2>/dev/null; }

# SIGTERM, wait up to 15 s (hearth drains), then SIGKILL. Only ever our own children.
stop_pid() {
    local pid=$1 i
    alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 300); do alive "$pid" || break; sleep 0.05; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}

# The pid and every descendant (LiteLLM may fork workers), comma-separated.
tree_pids() {
    local out=$1 kids k
    kids=$(ps -o pid= --ppid "$1" 2>/dev/null || true)
    for k in $kids; do out="$out,$(tree_pids "$k")"; done
    echo "$out"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
    local p=$1
    while ! port_free "$p"; do p=$((p + 1)); done
    echo "$p"
}
BASE=$(( 20000 + ($$ % 5000) * 2 ))
UP_PORT=$(pick_port "$BASE")
HEARTH_PORT=$(pick_port $((UP_PORT + 1)))
LITELLM_PORT=$(pick_port $((HEARTH_PORT + 1)))
DEAD_PORT=$(pick_port $((LITELLM_PORT + 1)))   # nothing listens here: connection refused
NGINX_PORT=$(pick_port $((DEAD_PORT + 1)))
NOUI_PORT=$(pick_port $((NGINX_PORT + 1)))

record() { # scenario target run json
    printf '{"scenario":"%s","target":"%s","run":%s,"data":%s}\n' "$1" "$2" "$3" "$4" >> "$RAW"
}

# start NAME READY_URL LOGFILE CMD... -> sets STARTED_PID and READY_MS
start() {
    local name=$1 url=$2 logfile=$3 t0 out
    shift 3
    t0=$EPOCHREALTIME
    "$@" >"$logfile" 2>&1 &
    STARTED_PID=$!
    if ! out=$("${LOAD_PIN[@]}" "$CLIENT" wait-ready --url "$url" --t0 "$t0" --pid "$STARTED_PID" --timeout-s 180); then
        tail -n 20 "$logfile" >&2 || true
        die "$name did not become ready (log: $logfile)"
    fi
    READY_MS=$(sed -E 's/.*"ready_ms":([0-9.]+).*/\1/' <<<"$out")
}

# ---------------------------------------------------------------- configs
HELD_BASE="http://127.0.0.1:$UP_PORT/paced/1000/$HOLD_S/v1"
cat > "$WORK/hearth.json5" <<EOF
// Generated by bench/run.sh: one fast upstream, one paced (held streams), one refusing.
{
  models: {
    mode: "replace",
    providers: {
      up:   { baseUrl: "http://127.0.0.1:$UP_PORT/v1", api: "openai-completions", models: [{ id: "m" }] },
      held: { baseUrl: "$HELD_BASE", api: "openai-completions", models: [{ id: "m" }] },
      dead: { baseUrl: "http://127.0.0.1:$DEAD_PORT/v1", api: "openai-completions", models: [{ id: "m" }] },
    },
  },
  agents: { defaults: { model: { primary: "up/m", fallbacks: ["up/m"] } } },
}
EOF
# The same config with the chat page off: the control for what the page costs API requests.
sed 's|^  agents: |  gateway: { controlUi: { enabled: false } },\n  agents: |' "$WORK/hearth.json5" > "$WORK/hearth-noui.json5"
grep -q 'enabled: false' "$WORK/hearth-noui.json5" || die "could not write the chat-page-off config"
cat > "$WORK/litellm.yaml" <<EOF
# Generated by bench/run.sh: the same three upstreams as hearth's config.
model_list:
  - model_name: up/m
    litellm_params: { model: openai/m, api_base: "http://127.0.0.1:$UP_PORT/v1", api_key: sk-bench }
  - model_name: held/m
    litellm_params: { model: openai/m, api_base: "$HELD_BASE", api_key: sk-bench }
  - model_name: dead/m
    litellm_params: { model: openai/m, api_base: "http://127.0.0.1:$DEAD_PORT/v1", api_key: sk-bench }
litellm_settings:
  num_retries: 0
  request_timeout: 600
general_settings:
  # No auth on either gateway (both on loopback): LiteLLM refuses to start without a master key
  # unless told this explicitly.
  dangerously_permit_weak_or_unset_master_key: true
router_settings:
  num_retries: 0
  fallbacks: [{ "dead/m": ["up/m"] }]
EOF

# nginx: a plain reverse proxy to the same upstream, nothing else: one worker (the gateway's one
# core), keep-alive to the upstream, no buffering (streams go out chunk by chunk), no access log
# (hearth writes no line per request either). worker_connections counts both sides of a held
# stream, the listener and the idle upstream connections it keeps (keepalive 64: wrk's largest
# concurrency), so 2 per held stream + 512 of room, up to the open-files limit (HOLD_N is
# capped to fit it, as for a gateway).
NGINX_CONNS=$(( 2 * HOLD_N + 512 ))
(( NGINX_CONNS <= FD_LIMIT )) || NGINX_CONNS=$FD_LIMIT
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx.conf" <<EOF
# Generated by bench/run.sh: a plain keep-alive reverse proxy in front of the bench upstream.
$([[ $(id -u) == 0 ]] && echo "user root;  # the master runs as root here; its workers stay root (\$WORK is 0700)" || true)
worker_processes 1;
worker_rlimit_nofile $FD_LIMIT;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events {
    worker_connections $NGINX_CONNS;
}
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;   # wrk's connections stay open for the whole run, as with hearth
    upstream bench_upstream {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 600s;
        }
    }
}
EOF

UP_URL="http://127.0.0.1:$UP_PORT/v1/chat/completions"
NGINX_URL="http://127.0.0.1:$NGINX_PORT/v1/chat/completions"
HEARTH_URL="http://127.0.0.1:$HEARTH_PORT/v1/chat/completions"
LITELLM_URL="http://127.0.0.1:$LITELLM_PORT/v1/chat/completions"
NOUI_URL="http://127.0.0.1:$NOUI_PORT/v1/chat/completions"
HELD_DIRECT_URL="http://127.0.0.1:$UP_PORT/paced/1000/$HOLD_S/v1/chat/completions"
HELD_NGINX_URL="http://127.0.0.1:$NGINX_PORT/paced/1000/$HOLD_S/v1/chat/completions"
TARGETS=(direct)
[[ "$WITH_NGINX" == 1 ]] && TARGETS+=(nginx)
TARGETS+=(hearth)
[[ "$WITH_LITELLM" == 1 ]] && TARGETS+=(litellm)
[[ "$WITH_UI_OFF" == 1 ]] && TARGETS+=(hearth_noui)
# Only API request cost is compared for the page-off control; every other scenario skips it.
api_only() { [[ $1 == hearth_noui ]]; }

url_of() {
    case $1 in
        direct) echo "$UP_URL" ;; nginx) echo "$NGINX_URL" ;;
        hearth) echo "$HEARTH_URL" ;; litellm) echo "$LITELLM_URL" ;;
        hearth_noui) echo "$NOUI_URL" ;;
    esac
}
held_url_of() { case $1 in direct) echo "$HELD_DIRECT_URL" ;; nginx) echo "$HELD_NGINX_URL" ;; *) url_of "$1" ;; esac; }
# The target's whole process tree: for nginx the master and its worker, for LiteLLM its workers.
pids_of() {
    case $1 in
        direct) tree_pids "$UPSTREAM_PID" ;; nginx) tree_pids "$NGINX_PID" ;;
        hearth) tree_pids "$HEARTH_PID" ;; litellm) tree_pids "$LITELLM_PID" ;;
        hearth_noui) tree_pids "$NOUI_PID" ;;
    esac
}

start_upstream() {
    start upstream "http://127.0.0.1:$UP_PORT/health" "$WORK/upstream.log" \
        "${LOAD_PIN[@]}" "$UPSTREAM_BIN" --port "$UP_PORT" --chunks 200
    UPSTREAM_PID=$STARTED_PID; PIDS+=("$UPSTREAM_PID")
}
start_hearth() {
    start hearth "http://127.0.0.1:$HEARTH_PORT/ready" "$WORK/hearth.log" \
        "${GW_PIN[@]}" "$HEARTH_BIN" --config "$WORK/hearth.json5" gateway run --port "$HEARTH_PORT"
    HEARTH_PID=$STARTED_PID; PIDS+=("$HEARTH_PID")
}
start_hearth_noui() {
    # Its own state directory: one gateway per directory (gateway.lock).
    mkdir -p "$WORK/noui-state"
    start hearth_noui "http://127.0.0.1:$NOUI_PORT/ready" "$WORK/hearth-noui.log" \
        env HEARTH_STATE_DIR="$WORK/noui-state" \
        "${GW_PIN[@]}" "$HEARTH_BIN" --config "$WORK/hearth-noui.json5" gateway run --port "$NOUI_PORT"
    NOUI_PID=$STARTED_PID; PIDS+=("$NOUI_PID")
    # The control must really be the page-off gateway: its / is not the page.
    if curl -fsS -o /dev/null "http://127.0.0.1:$NOUI_PORT/" 2>/dev/null; then
        die "hearth with controlUi.enabled: false still serves the chat page at /"
    fi
}
# Ready = nginx answers the upstream's /health through the proxy.
start_nginx() {
    start nginx "http://127.0.0.1:$NGINX_PORT/health" "$WORK/nginx.log" \
        "${GW_PIN[@]}" "$NGINX_BIN" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx.conf"
    NGINX_PID=$STARTED_PID; PIDS+=("$NGINX_PID")
}
start_litellm() {
    start litellm "http://127.0.0.1:$LITELLM_PORT/health/liveliness" "$WORK/litellm.log" \
        env LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
        LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY=true \
        "${GW_PIN[@]}" "$LITELLM_BIN" --config "$WORK/litellm.yaml" --host 127.0.0.1 \
        --port "$LITELLM_PORT" --num_workers 1
    LITELLM_PID=$STARTED_PID; PIDS+=("$LITELLM_PID")
}

client() { "${LOAD_PIN[@]}" "$CLIENT" "$@"; }

# What nginx said beyond notices (e.g. "worker_connections are not enough") goes to our log.
nginx_log_check() {
    local f="$WORK/nginx/error.log"
    [[ "$WITH_NGINX" == 1 && -s "$f" ]] || return 0
    if grep -Eq '\[(warn|error|crit|alert|emerg)\]' "$f"; then
        log "nginx logged (from $f):"
        grep -E '\[(warn|error|crit|alert|emerg)\]' "$f" | sed -E 's/^[0-9/]+ [0-9:]+ //; s/[0-9]+#[0-9]+: (\*[0-9]+ )?//' \
            | sort | uniq -c | sort -rn | head -n 5 >&2
    fi
}

# CPU time (utime + stime, in clock ticks) of a comma-separated pid list.
cpu_ticks() {
    local p total=0 t
    for p in ${1//,/ }; do
        t=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + ${t:-0}))
    done
    echo "$total"
}
TICK_HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

# wrk_cpu SCENARIO TARGET RUN URL MODEL CONNECTIONS SECONDS: records the wrk line with the
# target's CPU time per request added (cpu_us_per_req; for direct, the upstream's).
wrk_cpu() {
    local pids before after out req
    pids=$(pids_of "$2")
    before=$(cpu_ticks "$pids")
    out=$(wrk_run "$4" "$5" "$6" "$7")
    after=$(cpu_ticks "$pids")
    req=$(sed -E 's/.*"requests":([0-9]+).*/\1/' <<<"$out")
    out="${out%\}},\"cpu_us_per_req\":$(awk -v t=$((after - before)) -v hz="$TICK_HZ" -v n="$req" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }')}"
    record "$1" "$2" "$3" "$out"
}

# wrk URL MODEL CONNECTIONS SECONDS -> one JSON line
wrk_run() {
    BENCH_MODEL="$2" "${LOAD_PIN[@]}" wrk -t1 -c"$3" -d"$4"s --timeout 10s --latency \
        -s "$BENCH/wrk/chat.lua" "$1" | grep '^{'
}

# ---------------------------------------------------------------- meta
{
    printf '{"stamp":"%s","mode":"%s","runs":%s,' "$STAMP" "$MODE" "$RUNS"
    printf '"cpu":"%s","ncpu":%s,"kernel":"%s","os":"%s",' \
        "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$NCPU" "$(uname -r)" \
        "$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || uname -s)"
    printf '"mem_mb":%s,"load_before":"%s","gateway_cpus":"%s","load_cpus":"%s","fd_limit":%s,' \
        "$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
        "$GW_CPUS" "$LOAD_CPUS" "$FD_LIMIT"
    printf '"hearth":"%s","hearth_commit":"%s","nginx":"%s","litellm":"%s","wrk":"%s","rustc":"%s",' \
        "$("$HEARTH_BIN" --version 2>/dev/null | head -n1)" \
        "${HEARTH_COMMIT:-$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)}" \
        "$([[ -n "$NGINX_BIN" ]] && "$NGINX_BIN" -v 2>&1 | head -n1 | sed 's/^nginx version: //' || echo none)" \
        "$([[ -n "$LITELLM_BIN" ]] && "$(dirname "$LITELLM_BIN")/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null || echo none)" \
        "$( (wrk -v 2>&1 || true) | head -n1 | cut -d' ' -f1-2)" "$(rustc --version 2>/dev/null || echo unknown)"
    printf '"sizes":{"warm_s":%s,"lat_s":%s,"lat_litellm_s":%s,"tput_s":%s,"streams":%s,"streams_litellm":%s,"hold_n":%s,"hold_s":%s,"fallback_s":%s,"ready_runs":%s},' \
        "${WARM_S:-0}" "${LAT_S:-0}" "${LAT_LITELLM_S:-0}" "${TPUT_S:-0}" "$STREAMS" "${STREAMS_LITELLM:-0}" "$HOLD_N" "$HOLD_S" "${FALLBACK_S:-0}" "$READY_RUNS"
    printf '"hold_note":"%s","command":"bench/run.sh%s"}\n' "$HOLD_NOTE" \
        "$([[ $MODE == full ]] || echo " --$MODE")$([[ $WITH_LITELLM == 1 || $MODE == smoke ]] || echo " --skip-litellm")$([[ $WITH_NGINX == 1 || $MODE == smoke ]] || echo " --skip-nginx")$([[ $WITH_UI_OFF == 1 || $MODE == smoke ]] || echo " --skip-ui-off")"
} > "$OUT_DIR/$STAMP.meta.json"

log "mode $MODE, $RUNS runs, targets ${TARGETS[*]}; gateway on CPU $GW_CPUS, upstream and load on CPU $LOAD_CPUS; results: $RAW"

# ---------------------------------------------------------------- start-to-ready
start_upstream
record ready direct 1 "{\"ready_ms\":$READY_MS}"

# hearth: READY_RUNS starts with the first request cold to up/m, READY_RUNS with it to dead/m
# (the cold price of a refused first candidate; afterwards hearth's 30 s connect cooldown
# skips it, which the steady fallback scenario measures).
for r in $(seq 1 "$READY_RUNS"); do
    for first in up dead; do
        start_hearth
        record ready hearth "$r" "{\"ready_ms\":$READY_MS}"
        cold=$(client once --url "$HEARTH_URL" --model "$first/m")
        record "cold_first_$first" hearth "$r" "$cold"
        stop_pid "$HEARTH_PID"
    done
done
start_hearth
log "hearth ready in ${READY_MS} ms"

if [[ "$WITH_NGINX" == 1 ]]; then
    for r in $(seq 1 "$READY_RUNS"); do
        start_nginx
        record ready nginx "$r" "{\"ready_ms\":$READY_MS}"
        if (( r < READY_RUNS )); then stop_pid "$NGINX_PID"; fi
    done
    log "nginx ready in ${READY_MS} ms ($NGINX_BIN, config $WORK/nginx.conf)"
fi

if [[ "$WITH_UI_OFF" == 1 ]]; then
    start_hearth_noui
    log "hearth with the chat page off ready in ${READY_MS} ms"
fi

if [[ "$WITH_LITELLM" == 1 ]]; then
    for r in $(seq 1 "$READY_RUNS"); do
        start_litellm
        record ready litellm "$r" "{\"ready_ms\":$READY_MS}"
        log "LiteLLM ready in ${READY_MS} ms"
        if (( r < READY_RUNS )); then stop_pid "$LITELLM_PID"; fi
    done
fi

# ---------------------------------------------------------------- idle RSS
sleep 1
for t in "${TARGETS[@]}"; do
    record rss_idle "$t" 1 "$(client rss --pids "$(pids_of "$t")" --duration-s 0.5)"
done

# ---------------------------------------------------------------- smoke: a few of everything
if [[ "$MODE" == smoke ]]; then
    for t in "${TARGETS[@]}"; do
        out=$(client once --url "$(url_of "$t")" --model up/m)
        grep -q '"status":200' <<<"$out" || die "$t: non-stream request failed: $out"
        record once "$t" 1 "$out"
        out=$(client stream --url "$(url_of "$t")" --model up/m --n "$STREAMS" --warmup 1)
        grep -Eq '"errors":0,"events":20[2-9]' <<<"$out" || die "$t: stream failed: $out"
        record stream "$t" 1 "$out"
        out=$(client hold --url "$(held_url_of "$t")" --model held/m --n "$HOLD_N" --expect "$HOLD_S" \
            --stall-ms 2500 --timeout-s $((HOLD_S + 20)) --pids "$(pids_of "$t")")
        grep -q "\"ok\":$HOLD_N," <<<"$out" || die "$t: held streams failed: $out"
        record hold "$t" 1 "$out"
    done
    out=$(client once --url "$HEARTH_URL" --model dead/m)
    grep -q '"status":200' <<<"$out" || die "hearth: fallback request failed: $out"
    record fallback_once hearth 1 "$out"
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
        alive "$pid" && die "process $pid did not stop"
    done
    ports=("$UP_PORT" "$HEARTH_PORT")
    [[ "$WITH_NGINX" == 1 ]] && ports+=("$NGINX_PORT")
    for port in "${ports[@]}"; do
        port_free "$port" || die "port $port still accepts connections after stop"
    done
    nginx_log_check
    record stopped all 1 "{\"pids\":[$(IFS=,; echo "${PIDS[*]}")],\"ports\":[$(IFS=,; echo "${ports[*]}")]}"
    PIDS=()
    python3 "$BENCH/report.py" "$OUT_DIR/$STAMP" > "$OUT_DIR/$STAMP.md" 2>/dev/null || true
    log "smoke ok: $OUT_DIR/$STAMP.md"
    exit 0
fi

# ---------------------------------------------------------------- latency at concurrency 1
log "latency at concurrency 1"
for r in $(seq 1 "$RUNS"); do
    for t in "${TARGETS[@]}"; do
        d=$LAT_S; [[ $t == litellm ]] && d=$LAT_LITELLM_S
        wrk_run "$(url_of "$t")" up/m 1 "$WARM_S" >/dev/null
        wrk_cpu lat_c1 "$t" "$r" "$(url_of "$t")" up/m 1 "$d"
    done
done

# ---------------------------------------------------------------- throughput (and RSS under load)
for c in 16 64; do
    log "throughput at concurrency $c"
    for r in $(seq 1 "$RUNS"); do
        for t in "${TARGETS[@]}"; do
            wrk_run "$(url_of "$t")" up/m "$c" "$WARM_S" >/dev/null
            client rss --pids "$(pids_of "$t")" --duration-s "$TPUT_S" > "$WORK/rss.json" &
            rss_pid=$!
            wrk_cpu "tput_c$c" "$t" "$r" "$(url_of "$t")" up/m "$c" "$TPUT_S"
            wait "$rss_pid" || true
            record "rss_load_c$c" "$t" "$r" "$(cat "$WORK/rss.json")"
        done
    done
done

# ---------------------------------------------------------------- streaming, 200 chunks
log "streaming 200 chunks"
for r in $(seq 1 "$RUNS"); do
    for t in "${TARGETS[@]}"; do
        api_only "$t" && continue
        n=$STREAMS; [[ $t == litellm ]] && n=$STREAMS_LITELLM
        record stream "$t" "$r" "$(client stream --url "$(url_of "$t")" --model up/m --n "$n" --warmup 10)"
    done
done

# ---------------------------------------------------------------- fallback: first candidate refuses
# Not direct, not nginx: a model-routed failover is a gateway's feature, a plain proxy has none.
log "fallback path (first candidate refuses the connection)"
for r in $(seq 1 "$RUNS"); do
    for t in "${TARGETS[@]}"; do
        [[ $t == direct || $t == nginx ]] && continue
        api_only "$t" && continue
        wrk_run "$(url_of "$t")" dead/m 1 "$WARM_S" >/dev/null
        record fallback_c1 "$t" "$r" "$(wrk_run "$(url_of "$t")" dead/m 1 "$FALLBACK_S")"
    done
done

# ---------------------------------------------------------------- held-open streams
log "held-open streams: $HOLD_N at once, one event a second for $HOLD_S s"
for r in $(seq 1 "$RUNS"); do
    for t in "${TARGETS[@]}"; do
        api_only "$t" && continue
        timeout=$((HOLD_S + 60)); [[ $t == litellm ]] && timeout=$HOLD_LITELLM_TIMEOUT
        if [[ $t == litellm ]] && (( r > HOLD_RUNS_LITELLM )); then continue; fi
        sleep 2   # let the previous run's sockets close
        record hold "$t" "$r" "$(client hold --url "$(held_url_of "$t")" --model held/m --n "$HOLD_N" \
            --expect "$HOLD_S" --stall-ms 2500 --timeout-s "$timeout" --pids "$(pids_of "$t")")"
    done
done

# ---------------------------------------------------------------- RSS after load
sleep 2
for t in "${TARGETS[@]}"; do
    record rss_after "$t" 1 "$(client rss --pids "$(pids_of "$t")" --duration-s 0.5)"
done

for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
PIDS=()
nginx_log_check

# ---------------------------------------------------------------- report
python3 "$BENCH/report.py" "$OUT_DIR/$STAMP" > "$OUT_DIR/$STAMP.md"
log "tables: $OUT_DIR/$STAMP.md (chart: $OUT_DIR/$STAMP.svg)"
if [[ "$UPDATE" == 1 && "$OUT_DIR" == "$BENCH/results" ]]; then
    python3 "$BENCH/report.py" "$OUT_DIR/$STAMP" --update "$ROOT/BENCHMARKS.md"
    log "BENCHMARKS.md: generated section updated"
fi
