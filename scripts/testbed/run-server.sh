#!/usr/bin/env bash
# Runs the test bed's llama-server with the tiny model in the foreground, for manual use.
#
#   bash scripts/testbed/run-server.sh [--ctx-size N] [--port P] [-- EXTRA llama-server ARGS]
#
# Defaults: --ctx-size 512, a free port chosen at random. Binds 127.0.0.1 only; the
# model is served under the name "tiny". Stop it with Ctrl-C (or kill its PID).
# Uses HEARTH_LLAMA_SERVER / HEARTH_TINY_GGUF when both are set, otherwise runs
# setup.sh (instant once its cache is warm) to find or build them.
# Tip: `-- --no-cache-prompt` makes usage independent of earlier requests (by default
# llama-server reuses the previous prompt's KV cache: cached_tokens and Anthropic's
# input_tokens / cache_read_input_tokens then depend on what was sent before).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CTX=512
PORT=""
EXTRA=()

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; }
die() { printf 'run-server: ERROR: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --ctx-size) [ $# -ge 2 ] || die "--ctx-size needs a value"; CTX="$2"; shift 2 ;;
        --ctx-size=*) CTX="${1#*=}"; shift ;;
        --port) [ $# -ge 2 ] || die "--port needs a value"; PORT="$2"; shift 2 ;;
        --port=*) PORT="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) usage; die "unknown argument: $1" ;;
    esac
done
case "$CTX" in ''|*[!0-9]*) die "--ctx-size must be a number, got '$CTX'" ;; esac

if [ -z "${HEARTH_LLAMA_SERVER:-}" ] || [ -z "${HEARTH_TINY_GGUF:-}" ]; then
    out="$(bash "$HERE/setup.sh")" || die "setup.sh failed"
    HEARTH_LLAMA_SERVER="$(printf '%s\n' "$out" | sed -n 's/^HEARTH_LLAMA_SERVER=//p' | tail -n1)"
    HEARTH_TINY_GGUF="$(printf '%s\n' "$out" | sed -n 's/^HEARTH_TINY_GGUF=//p' | tail -n1)"
fi
[ -x "$HEARTH_LLAMA_SERVER" ] || die "llama-server not found: $HEARTH_LLAMA_SERVER"
[ -f "$HEARTH_TINY_GGUF" ] || die "model not found: $HEARTH_TINY_GGUF"

if [ -z "$PORT" ]; then
    # Ask the kernel for a free loopback port. (A tiny race: another process could
    # take it before llama-server binds; llama-server then fails loudly.)
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')" \
        || die "cannot pick a free port"
fi
case "$PORT" in ''|*[!0-9]*) die "--port must be a number, got '$PORT'" ;; esac

printf 'run-server: http://127.0.0.1:%s (model "tiny", ctx %s, pid %s)\n' "$PORT" "$CTX" "$$" >&2
exec "$HEARTH_LLAMA_SERVER" \
    --model "$HEARTH_TINY_GGUF" \
    --alias tiny \
    --host 127.0.0.1 \
    --port "$PORT" \
    --ctx-size "$CTX" \
    --threads 1 \
    --parallel 1 \
    --no-webui \
    --jinja \
    "${EXTRA[@]+"${EXTRA[@]}"}"
