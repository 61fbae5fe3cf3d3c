#!/usr/bin/env bash
# Installs (once) the real OpenAI Codex CLI (npm `@openai/codex`) for crates/hearth/tests/codex.rs,
# under ~/.cache/hearth-codex/<version> (override the root with HEARTH_CODEX_DIR, the version with
# HEARTH_CODEX_VERSION; default: the newest `0.x` npm serves, looked up once and remembered).
# Idempotent: an existing install is reused. Prints the path of the `codex` binary on stdout (the
# last line). Exits 3 with a message on stderr when npm cannot install it (no registry, no npm).
set -euo pipefail

ROOT="${HEARTH_CODEX_DIR:-$HOME/.cache/hearth-codex}"
command -v npm >/dev/null || { echo "codex-env: npm not found; install nodejs and npm" >&2; exit 3; }
mkdir -p "$ROOT"

VERSION="${HEARTH_CODEX_VERSION:-}"
if [[ -z "$VERSION" && -f "$ROOT/version" ]]; then
    VERSION="$(cat "$ROOT/version")"
fi
if [[ -z "$VERSION" ]]; then
    VERSION="$(npm view --fetch-retries=1 --fetch-timeout=20000 @openai/codex version 2>/dev/null || true)"
    [[ -n "$VERSION" ]] || { echo "codex-env: npm could not look up @openai/codex (registry unreachable?)" >&2; exit 3; }
    echo "$VERSION" >"$ROOT/version"
fi

PREFIX="$ROOT/$VERSION"
BIN="$PREFIX/node_modules/.bin/codex"
if [[ -x "$BIN" ]] && "$BIN" --version >/dev/null 2>&1; then
    echo "$BIN"
    exit 0
fi
mkdir -p "$PREFIX"
if ! npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "@openai/codex@$VERSION" >&2; then
    echo "codex-env: npm could not install @openai/codex@$VERSION" >&2
    exit 3
fi
"$BIN" --version >&2 || { echo "codex-env: $BIN does not run" >&2; exit 3; }
echo "$BIN"
