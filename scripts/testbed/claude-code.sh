#!/usr/bin/env bash
# Installs (once) Claude Code, the npm package `@anthropic-ai/claude-code`, for
# crates/hearth/tests/claude_code.rs. Idempotent: an install of the pinned version is reused.
# Prints the path of its `claude` launcher on stdout (the last line), so callers can do
# `CLAUDE=$(scripts/testbed/claude-code.sh)`.
#
# Exit status 3 means "cannot be installed here" (no npm, or the registry did not answer): the
# test then says so and skips. Any other failure is a real error.
#
# Override the version with HEARTH_CLAUDE_CODE_VERSION, the cache root with HEARTH_CLAUDE_CODE_HOME
# (default ~/.cache/hearth-claude-code; the install lives in <root>/<version>).
set -euo pipefail

VERSION="${HEARTH_CLAUDE_CODE_VERSION:-2.1.332}"
ROOT="${HEARTH_CLAUDE_CODE_HOME:-$HOME/.cache/hearth-claude-code}"
PREFIX="$ROOT/$VERSION"
BIN="$PREFIX/node_modules/.bin/claude"

if [[ -x "$BIN" ]] && [[ -f "$PREFIX/.installed" ]]; then
    echo "$BIN"
    exit 0
fi

command -v npm >/dev/null || { echo "claude-code: npm not found; install Node.js 20+ and npm" >&2; exit 3; }
command -v node >/dev/null || { echo "claude-code: node not found; install Node.js 20+" >&2; exit 3; }

mkdir -p "$PREFIX"
# A private npm cache and no audit/fund chatter; a lock keeps two test processes from
# installing into the same prefix at once.
exec 9>"$ROOT/.lock-$VERSION"
flock 9
if [[ -x "$BIN" ]] && [[ -f "$PREFIX/.installed" ]]; then
    echo "$BIN"
    exit 0
fi
if ! npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
    --cache "$ROOT/.npm-cache" "@anthropic-ai/claude-code@$VERSION" >&2; then
    echo "claude-code: npm could not install @anthropic-ai/claude-code@$VERSION (registry unreachable?)" >&2
    exit 3
fi
[[ -x "$BIN" ]] || { echo "claude-code: installed, but $BIN is missing" >&2; exit 1; }
touch "$PREFIX/.installed"
echo "claude-code: @anthropic-ai/claude-code $VERSION in $PREFIX" >&2
echo "$BIN"
