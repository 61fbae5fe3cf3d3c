#!/usr/bin/env bash
# Creates (once) the Python virtualenv the SDK tests use: the real `openai` and `anthropic`
# clients. Idempotent: an existing environment with both packages is reused. Prints the path of
# its python on stdout (the last line), so callers can do `PY=$(scripts/testbed/python-env.sh)`.
#
# Override the location with HEARTH_PYENV (default ~/.cache/hearth-testbed/pyenv).
set -euo pipefail

ENV_DIR="${HEARTH_PYENV:-$HOME/.cache/hearth-testbed/pyenv}"
PY="$ENV_DIR/bin/python"
# Major versions the tests are written against (openai 2.x/3.x, anthropic 0.x-2.x).
PACKAGES=("openai>=1.99,<4" "anthropic>=0.60,<3")

if [[ -x "$PY" ]] && "$PY" -c 'import openai, anthropic' >/dev/null 2>&1; then
    echo "$PY"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || { echo "python-env: $PYTHON not found; install python3 and python3-venv" >&2; exit 1; }
mkdir -p "$(dirname "$ENV_DIR")"
"$PYTHON" -m venv "$ENV_DIR" >&2
"$PY" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
"$PY" -c 'import openai, anthropic; import sys; print(f"python-env: openai {openai.__version__}, anthropic {anthropic.__version__}", file=sys.stderr)'
echo "$PY"
