#!/usr/bin/env bash
# Real-server test bed: installs cargo-nextest (the test runner the README's test command
# uses) when it is missing, builds llama.cpp's `llama-server` and writes a tiny
# random-weight GGUF model, both cached outside the clone.
#
#   bash scripts/testbed/setup.sh
#
# Idempotent: safe on every CI run and on a developer machine. With cargo-nextest on the
# PATH and both artifacts cached it installs nothing, touches no network and takes a
# fraction of a second.
# Cold (fresh machine, 2 cores): about 6 minutes on a quiet machine, up to about
# 11 minutes when something else (e.g. cargo) builds at the same time. Do not run it
# beside `cargo build` if you can avoid it.
#
# On success the last two stdout lines are (all progress goes to stderr):
#   HEARTH_LLAMA_SERVER=<path to llama-server>
#   HEARTH_TINY_GGUF=<path to tiny model>
# so a caller can do:  eval "$(bash scripts/testbed/setup.sh | grep '^HEARTH_')"
#
# Environment:
#   HEARTH_TESTBED_CACHE  cache folder (default: ~/.cache/hearth-testbed)
#   HEARTH_BUILD_JOBS     parallel compile jobs for the llama-server build (default: 2)
#
# Needs: a Rust toolchain (cargo, Rust >= 1.95), Debian 12 (or similar) as root when cmake
# or chromium is missing (`apt-get install cmake chromium`), g++, python3 with pip and venv, and, on a cold
# cache, network to crates.io (cargo-nextest, about 3 minutes to build), Debian apt and PyPI.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36   # PyPI sdist that vendors llama.cpp (reports 0.5.0-dev)
GGUF_VERSION=0.19.0
NUMPY_VERSION=2.2.6               # has CPython 3.11 wheels; gguf 0.19.0 accepts it

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${HEARTH_TESTBED_CACHE:-$HOME/.cache/hearth-testbed}"
JOBS="${HEARTH_BUILD_JOBS:-2}"

log() { printf 'testbed: %s\n' "$*" >&2; }
DIED=0
die() { printf 'testbed: ERROR: %s\n' "$*" >&2; DIED=1; exit 1; }

mkdir -p "$CACHE" || die "cannot create cache folder $CACHE"

# Temp folders live inside the cache folder, so the final `mv` is an atomic rename.
TMP_DIRS=()
cleanup() { local d; for d in "${TMP_DIRS[@]+"${TMP_DIRS[@]}"}"; do rm -rf -- "$d"; done; }
trap 'rc=$?; cleanup; if [ $rc -ne 0 ] && [ "$DIED" = 0 ]; then printf "testbed: ERROR: setup failed (exit %s)\n" "$rc" >&2; fi' EXIT
# Sets WORK to a fresh temp folder that is removed on exit.
new_tmp() { WORK="$(mktemp -d "$CACHE/tmp.XXXXXX")" || die "mktemp failed in $CACHE"; TMP_DIRS+=("$WORK"); }

SERVER_DIR="$CACHE/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION"
SERVER_BIN="$SERVER_DIR/llama-server"
GEN="$HERE/make_tiny_gguf.py"
[ -f "$GEN" ] || die "generator not found: $GEN"
GEN_VERSION="$(sed -n 's/^GENERATOR_VERSION *= *\([0-9][0-9]*\).*/\1/p' "$GEN" | head -n1)"
[ -n "$GEN_VERSION" ] || die "no GENERATOR_VERSION line in $GEN"
MODEL="$CACHE/tiny-v$GEN_VERSION.gguf"

server_ok() { [ -x "$SERVER_BIN" ] && "$SERVER_BIN" --version >/dev/null 2>&1; }

# ---------------------------------------------------------------- cargo-nextest
# `cargo install` caches it under ~/.cargo/bin; once there this is one `command -v`.
if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs), then rerun"
    log "installing cargo-nextest (cargo install --locked cargo-nextest; once, a few minutes)..."
    cargo install --locked cargo-nextest >&2 || die "cargo install --locked cargo-nextest failed"
    cargo nextest --version >/dev/null 2>&1 \
        || die "cargo-nextest installed but \`cargo nextest\` does not run (is ~/.cargo/bin on PATH?)"
else
    log "cached: cargo-nextest"
fi

finish() {
    # The real `openai` and `anthropic` Python SDKs for the client compatibility tests.
    local sdk_python
    sdk_python="$(bash "$HERE/python-env.sh" | tail -n 1)" || die "python-env.sh failed"
    bash "$HERE/synapse-env.sh" >/dev/null || die "synapse-env.sh failed" # Synapse for the Matrix tests.
    # Debian's Chromium for the chat page's browser test (crates/hearth/tests/webchat.rs).
    if ! command -v chromium >/dev/null 2>&1; then
        log "installing chromium (apt-get, about 300 MB; the chat page's browser test)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
            >"$CACHE/apt-chromium.log" 2>&1 \
            || { tail -n 20 "$CACHE/apt-chromium.log" >&2; die "apt-get install chromium failed (are you root?)"; }
    fi
    printf 'HEARTH_LLAMA_SERVER=%s\n' "$SERVER_BIN"
    printf 'HEARTH_TINY_GGUF=%s\n' "$MODEL"
    printf 'HEARTH_SDK_PYTHON=%s\n' "$sdk_python"
    printf 'HEARTH_CHROMIUM=%s\n' "$(command -v chromium)"
    exit 0
}

# Fast path: everything cached, no lock, no Python, no network.
if server_ok && [ -s "$MODEL" ]; then
    log "cached: $SERVER_BIN"
    log "cached: $MODEL"
    finish
fi

# One setup at a time per cache folder (CI and a developer shell may overlap).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.lock"
    if ! flock -n 9; then
        log "another setup holds $CACHE/.lock; waiting for it..."
        flock 9 || die "cannot lock $CACHE/.lock"
    fi
fi
# Leftovers of an interrupted earlier run (we hold the lock, so none is live).
rm -rf -- "$CACHE"/tmp.* "$SERVER_DIR"/.llama-server.tmp.* "$CACHE"/tiny-v*.gguf.tmp.* 2>/dev/null || true

apt_install() {
    local pkgs=("$@") aptlog="$CACHE/apt.log"
    log "installing ${pkgs[*]} (apt-get)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"; } >"$aptlog" 2>&1; then
        tail -n 20 "$aptlog" >&2
        die "apt-get install ${pkgs[*]} failed (are you root? full log: $aptlog)"
    fi
}

# ---------------------------------------------------------------- python
# Debian's own python3 refuses `pip install` (PEP 668, EXTERNALLY-MANAGED); there a
# private virtualenv inside the cache folder is used instead.
PY=""
ensure_python() {
    [ -n "$PY" ] && return 0
    PY=python3
    command -v "$PY" >/dev/null 2>&1 || die "python3 not found (apt-get install -y python3 python3-venv)"
    if "$PY" - <<'EOF' 2>/dev/null
import os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if (os.path.exists(marker) and sys.prefix == sys.base_prefix) else 1)
EOF
    then
        local venv="$CACHE/venv"
        if ! "$venv/bin/python3" -m pip --version >/dev/null 2>&1; then
            log "python3 is externally managed (PEP 668); creating a virtualenv at $venv"
            rm -rf -- "$venv"
            if ! "$PY" -m venv "$venv" >/dev/null 2>&1; then
                apt_install python3-venv
                rm -rf -- "$venv"
                "$PY" -m venv "$venv" >&2 || die "cannot create virtualenv $venv"
            fi
        fi
        PY="$venv/bin/python3"
    fi
    "$PY" -m pip --version >/dev/null 2>&1 || die "pip is not available for $PY (apt-get install -y python3-pip)"
}

pip_install() {
    "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@" >&2 \
        || die "pip install $* failed"
}

# ---------------------------------------------------------------- llama-server
if server_ok; then
    log "cached: $SERVER_BIN"
else
    [ -e "$SERVER_BIN" ] && log "cached llama-server does not run; rebuilding"
    ensure_python
    if ! command -v cmake >/dev/null 2>&1; then
        apt_install cmake
        command -v cmake >/dev/null 2>&1 || die "cmake still missing after apt-get install cmake"
    fi
    command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 \
        || die "no C++ compiler (apt-get install -y g++)"

    new_tmp
    log "downloading llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION sdist from PyPI (about 75 MB)..."
    # `--no-binary llama-cpp-python`, not `--no-binary :all:`: the latter also applies to
    # the build dependencies pip installs to read the sdist's metadata, and makes pip
    # compile cmake (and more) from source.
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
        --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$WORK/dl" >&2 \
        || die "pip download llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION failed"
    SDIST="$WORK/dl/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
    [ -f "$SDIST" ] || die "sdist not found in $WORK/dl"

    log "unpacking llama.cpp sources..."
    tar -xzf "$SDIST" -C "$WORK" "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp" \
        || die "cannot unpack $SDIST"
    rm -rf -- "$WORK/dl"
    SRC="$WORK/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
    [ -f "$SRC/CMakeLists.txt" ] || die "no llama.cpp tree in the sdist ($SRC)"

    log "configuring llama-server..."
    # GGML_NATIVE=OFF: a portable AVX2/FMA build, so the cached binary also runs on other
    # x86-64-v3 CPUs. LLAMA_USE_PREBUILT_UI=OFF: otherwise the build tries to download the
    # web UI, which fails without general network access (LLAMA_BUILD_UI/APP: not needed).
    cmake -S "$SRC" -B "$WORK/build" \
        -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF \
        -DGGML_NATIVE=OFF \
        -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_SERVER=ON \
        -DLLAMA_BUILD_UI=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_BUILD_APP=OFF \
        >"$WORK/configure.log" 2>&1 \
        || { tail -n 40 "$WORK/configure.log" >&2; die "cmake configure failed"; }

    log "building llama-server (about 6 minutes on 2 cores)..."
    start=$(date +%s)
    cmake --build "$WORK/build" --target llama-server -j"$JOBS" >"$WORK/build.log" 2>&1 \
        || { tail -n 60 "$WORK/build.log" >&2; die "llama-server build failed"; }
    log "build took $(( $(date +%s) - start )) s"

    BUILT="$WORK/build/bin/llama-server"
    [ -x "$BUILT" ] || BUILT="$(find "$WORK/build" -type f -name llama-server -perm -u+x | head -n1)"
    [ -n "$BUILT" ] && [ -x "$BUILT" ] || die "build finished but no llama-server binary found"
    "$BUILT" --version >/dev/null 2>&1 || die "the built llama-server does not run (--version failed)"

    mkdir -p "$SERVER_DIR"
    cp "$BUILT" "$SERVER_DIR/.llama-server.tmp.$$"
    chmod 755 "$SERVER_DIR/.llama-server.tmp.$$"
    mv -f "$SERVER_DIR/.llama-server.tmp.$$" "$SERVER_BIN"
    rm -rf -- "$WORK"
    server_ok || die "cached llama-server does not run: $SERVER_BIN"
    log "llama-server ready: $SERVER_BIN ($("$SERVER_BIN" --version 2>&1 | grep -m1 -i '^version' || true))"
fi

# ---------------------------------------------------------------- tiny GGUF
if [ -s "$MODEL" ]; then
    log "cached: $MODEL"
else
    ensure_python
    if ! "$PY" -c 'import numpy' >/dev/null 2>&1; then
        log "installing numpy==$NUMPY_VERSION (pip)"
        pip_install "numpy==$NUMPY_VERSION"
    fi
    have_gguf="$("$PY" -c 'import importlib.metadata as m, gguf; print(m.version("gguf"))' 2>/dev/null || true)"
    if [ "$have_gguf" != "$GGUF_VERSION" ]; then
        log "installing gguf==$GGUF_VERSION (pip)"
        pip_install "gguf==$GGUF_VERSION"
    fi
    log "writing tiny model..."
    "$PY" "$GEN" "$MODEL.tmp.$$" >&2 || { rm -f -- "$MODEL.tmp.$$"; die "make_tiny_gguf.py failed"; }
    mv -f "$MODEL.tmp.$$" "$MODEL"
    log "tiny model ready: $MODEL ($(wc -c <"$MODEL") bytes)"
fi

finish
