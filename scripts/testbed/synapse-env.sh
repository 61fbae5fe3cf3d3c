#!/usr/bin/env bash
# Creates (once) the Python virtualenv with a pinned Synapse (the Matrix homeserver) that the
# Matrix channel tests run against (crates/hearth-testkit/src/synapse.rs). Idempotent: an
# existing environment with the pinned version is reused. Prints the path of its python on
# stdout (the last line), so callers can do `PY=$(scripts/testbed/synapse-env.sh | tail -n 1)`.
#
# Override the location with HEARTH_SYNAPSE_ENV (default ~/.cache/hearth-synapse-<version>).
set -euo pipefail

# The version the tests and docs/channels.md name; bump both together.
VERSION="1.163.2"
ENV_DIR="${HEARTH_SYNAPSE_ENV:-$HOME/.cache/hearth-synapse-$VERSION}"
PY="$ENV_DIR/bin/python"
CHECK="import synapse, sys; sys.exit(0 if synapse.__version__ == '$VERSION' else 1)"

if [[ -x "$PY" ]] && "$PY" -c "$CHECK" >/dev/null 2>&1; then
    echo "$PY"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || { echo "synapse-env: $PYTHON not found; install python3 and python3-venv" >&2; exit 1; }
mkdir -p "$(dirname "$ENV_DIR")"
"$PYTHON" -m venv "$ENV_DIR" >&2
"$PY" -m pip install --quiet --disable-pip-version-check "matrix-synapse==$VERSION" >&2
"$PY" -c "$CHECK" || { echo "synapse-env: matrix-synapse $VERSION did not install into $ENV_DIR" >&2; exit 1; }
"$PY" -c 'import synapse, sys; print(f"synapse-env: matrix-synapse {synapse.__version__}", file=sys.stderr)'
echo "$PY"
