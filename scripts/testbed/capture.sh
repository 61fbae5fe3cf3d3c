#!/usr/bin/env bash
# Records real llama-server wire traffic into scripts/testbed/captures/ (or DIR), so
# adapters and tests can be written against the real formats.
#
#   bash scripts/testbed/capture.sh [DIR]
#
# Starts its own llama-server (tiny model, --ctx-size 512, free loopback port), sends
# one request of each kind with curl, stores each response body (and the raw SSE
# stream), writes INDEX.txt (request, status, content type for every file), and stops
# exactly the server it started. Ids, timestamps and timings differ between runs;
# the generated text is deterministic (temperature 0).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${1:-$HERE/captures}"
CTX=512

die() { printf 'capture: ERROR: %s\n' "$*" >&2; exit 1; }
command -v curl >/dev/null 2>&1 || die "curl not found"

if [ -z "${HEARTH_LLAMA_SERVER:-}" ] || [ -z "${HEARTH_TINY_GGUF:-}" ]; then
    out="$(bash "$HERE/setup.sh")" || die "setup.sh failed"
    HEARTH_LLAMA_SERVER="$(printf '%s\n' "$out" | sed -n 's/^HEARTH_LLAMA_SERVER=//p' | tail -n1)"
    HEARTH_TINY_GGUF="$(printf '%s\n' "$out" | sed -n 's/^HEARTH_TINY_GGUF=//p' | tail -n1)"
fi

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
BASE="http://127.0.0.1:$PORT"
mkdir -p "$DIR"
LOG="$(mktemp /tmp/hearth-capture-server.XXXXXX.log)"

"$HEARTH_LLAMA_SERVER" --model "$HEARTH_TINY_GGUF" --alias tiny --host 127.0.0.1 --port "$PORT" \
    --ctx-size "$CTX" --threads 1 --parallel 1 --no-webui --jinja >"$LOG" 2>&1 &
SERVER_PID=$!
stop_server() {
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -f -- "$LOG"
}
trap stop_server EXIT

ready=0
for _ in $(seq 1 100); do
    if curl -fsS "$BASE/health" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; die "llama-server exited during startup"; }
    sleep 0.1
done
[ "$ready" = 1 ] || { cat "$LOG" >&2; die "llama-server not ready after 10 s"; }
printf 'capture: llama-server pid %s on %s\n' "$SERVER_PID" "$BASE" >&2

INDEX="$DIR/INDEX.txt"
{
    echo "Real llama-server captures (llama.cpp vendored in llama-cpp-python 0.3.36), tiny model, --ctx-size $CTX."
    echo "Written by scripts/testbed/capture.sh; one block per file: request, HTTP status, content type."
    echo "server: $("$HEARTH_LLAMA_SERVER" --version 2>&1 | grep -m1 -i version || true)"
    echo
} >"$INDEX"

# req FILE METHOD PATH [BODY]: stores the response body in DIR/FILE and indexes it.
req() {
    local file="$1" method="$2" path="$3" body="${4:-}" meta
    if [ -n "$body" ]; then
        meta="$(curl -sS -N -o "$DIR/$file" -w '%{http_code} %{content_type}' -X "$method" \
            -H 'Content-Type: application/json' --data-binary "$body" "$BASE$path")" || die "curl $path failed"
    else
        meta="$(curl -sS -N -o "$DIR/$file" -w '%{http_code} %{content_type}' -X "$method" "$BASE$path")" \
            || die "curl $path failed"
    fi
    {
        echo "== $file"
        echo "$method $path"
        if [ -n "$body" ]; then
            if [ "${#body}" -gt 400 ]; then echo "request: ${body:0:300}... (${#body} chars)"; else echo "request: $body"; fi
        fi
        echo "status: ${meta%% *}"
        echo "content-type: ${meta#* }"
        echo
    } >>"$INDEX"
    printf 'capture: %-22s %s %s -> %s\n' "$file" "$method" "$path" "${meta%% *}" >&2
}

MSGS='[{"role":"system","content":"You are terse."},{"role":"user","content":"hello world, the quick brown fox!"}]'
LONG="$(python3 -c 'print("hello world, the quick brown fox jumps over the lazy dog. " * 60)')"   # ~800 tokens
FILL="$(python3 -c 'print("hello world, the quick brown fox jumps over the lazy dog. " * 35)')"   # ~470 tokens
req health.json   GET /health
req models.json   GET /v1/models
req props.json    GET /props
req tokenize.json POST /tokenize '{"content":"hello world, the quick brown fox!","with_pieces":true}'

req chat.json POST /v1/chat/completions \
    "{\"model\":\"tiny\",\"messages\":$MSGS,\"max_tokens\":8,\"temperature\":0}"
req chat.sse  POST /v1/chat/completions \
    "{\"model\":\"tiny\",\"messages\":$MSGS,\"max_tokens\":8,\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
# A prompt with the word "done": the tiny model answers " done" then EOS (natural stop).
req chat-eos.json POST /v1/chat/completions \
    "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"we are done\"}],\"max_tokens\":8,\"temperature\":0}"
req chat-stopseq.json POST /v1/chat/completions \
    "{\"model\":\"tiny\",\"messages\":$MSGS,\"max_tokens\":8,\"temperature\":0,\"stop\":[\" can\"]}"

req responses.json POST /v1/responses \
    "{\"model\":\"tiny\",\"instructions\":\"You are terse.\",\"input\":\"hello world, the quick brown fox!\",\"max_output_tokens\":8,\"temperature\":0}"
req responses.sse  POST /v1/responses \
    "{\"model\":\"tiny\",\"instructions\":\"You are terse.\",\"input\":\"hello world, the quick brown fox!\",\"max_output_tokens\":8,\"temperature\":0,\"stream\":true}"

req responses-eos.json POST /v1/responses \
    "{\"model\":\"tiny\",\"input\":\"we are done\",\"max_output_tokens\":8,\"temperature\":0}"

req messages.json POST /v1/messages \
    "{\"model\":\"tiny\",\"system\":\"You are terse.\",\"messages\":[{\"role\":\"user\",\"content\":\"hello world, the quick brown fox!\"}],\"max_tokens\":8,\"temperature\":0}"
req messages.sse  POST /v1/messages \
    "{\"model\":\"tiny\",\"system\":\"You are terse.\",\"messages\":[{\"role\":\"user\",\"content\":\"hello world, the quick brown fox!\"}],\"max_tokens\":8,\"temperature\":0,\"stream\":true}"
req messages-eos.sse POST /v1/messages \
    "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"we are done\"}],\"max_tokens\":8,\"temperature\":0,\"stream\":true}"
req messages-stopseq.json POST /v1/messages \
    "{\"model\":\"tiny\",\"system\":\"You are terse.\",\"messages\":[{\"role\":\"user\",\"content\":\"hello world, the quick brown fox!\"}],\"max_tokens\":8,\"temperature\":0,\"stop_sequences\":[\" can\"]}"
req count_tokens.json POST /v1/messages/count_tokens \
    "{\"model\":\"tiny\",\"system\":\"You are terse.\",\"messages\":[{\"role\":\"user\",\"content\":\"hello world, the quick brown fox!\"}]}"

req overflow.json POST /v1/chat/completions \
    "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"$LONG\"}],\"max_tokens\":8}"
req overflow-stream.txt POST /v1/chat/completions \
    "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"$LONG\"}],\"max_tokens\":8,\"stream\":true}"
req overflow-responses.json POST /v1/responses \
    "{\"model\":\"tiny\",\"input\":\"$LONG\",\"max_output_tokens\":8}"
req overflow-messages.json POST /v1/messages \
    "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"$LONG\"}],\"max_tokens\":8}"

req overflow-messages-stream.txt POST /v1/messages \
    "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"$LONG\"}],\"max_tokens\":8,\"stream\":true}"
# The prompt fits but prompt + max_tokens does not.
req ctx-fill.json POST /v1/chat/completions \
    "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"$FILL\"}],\"max_tokens\":200,\"temperature\":0}"

# Prompt processing progress (`return_progress`): reports before the first token.
req chat-progress.sse POST /v1/chat/completions \
    "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"$FILL\"}],\"max_tokens\":4,\"temperature\":0,\"stream\":true,\"return_progress\":true}"

req malformed.json POST /v1/chat/completions '{"model":"tiny","messages":['
req notfound.json  GET /v1/nope

stop_server
trap - EXIT
printf 'capture: wrote %s\n' "$DIR" >&2
