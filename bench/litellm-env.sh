#!/usr/bin/env bash
# Creates (once) the LiteLLM proxy virtualenv the benchmark compares against and prints the path
# of its `litellm` executable on stdout (last line). Idempotent: a working install is reused.
#
# Pinned: litellm[proxy]==1.106.2. Never 1.82.7 or 1.82.8 (trojanised releases, litellm#24518).
# Location: HEARTH_BENCH_CACHE (default ~/.cache/hearth-bench)/litellm-<version>/venv.
set -euo pipefail

LITELLM_VERSION="${LITELLM_VERSION:-1.106.2}"
case "$LITELLM_VERSION" in
    1.82.7|1.82.8) echo "litellm-env: refusing LiteLLM $LITELLM_VERSION (trojanised release)" >&2; exit 1 ;;
esac
CACHE="${HEARTH_BENCH_CACHE:-$HOME/.cache/hearth-bench}"
ENV_DIR="$CACHE/litellm-$LITELLM_VERSION/venv"
BIN="$ENV_DIR/bin/litellm"

export LITELLM_LOCAL_MODEL_COST_MAP=True
if [[ -x "$BIN" ]] && "$ENV_DIR/bin/python" -c 'import litellm.proxy.proxy_server' >/dev/null 2>&1; then
    echo "$BIN"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || { echo "litellm-env: $PYTHON not found; apt-get install python3 python3-venv" >&2; exit 1; }
rm -rf "$ENV_DIR"
mkdir -p "$(dirname "$ENV_DIR")"
echo "litellm-env: installing litellm[proxy]==$LITELLM_VERSION into $ENV_DIR (about 3.5 minutes the first time)" >&2
"$PYTHON" -m venv "$ENV_DIR" >&2
"$ENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION" >&2
"$ENV_DIR/bin/python" -c 'import litellm.proxy.proxy_server' >&2
echo "$BIN"
