#!/usr/bin/env bash
# Run the optional Rasa 3.6 NLU service next to huiyin.
#
# Rasa 3.6 needs Python < 3.11 (it pins SQLAlchemy 1.4 and TensorFlow 2.12), while huiyin needs 3.11, so
# Rasa lives in its own Python 3.10 virtualenv OUTSIDE the clone and the bot talks to it over HTTP
# (integrations/rasa/adapter.py). Everything here is non-interactive and safe to run in CI (CI=true).
#
#   scripts/rasa-service.sh setup   # create/reuse the venv (cached), install rasa==3.6.* + jieba
#   scripts/rasa-service.sh train   # train an NLU-only model from dialogs/nlu (cached by data+config hash)
#                                   # and print its path
#   scripts/rasa-service.sh start [MODEL]  # serve MODEL (default: `train`'s) on 127.0.0.1:$PORT in the
#                                   # background, wait until /status answers, print the URL
#   scripts/rasa-service.sh stop    # stop the background server
#   scripts/rasa-service.sh status  # print whether it runs, and its URL
#
# Environment:
#   HUIYIN_RASA_VENV   venv location       (default ~/.cache/huiyin/rasa-3.6-py310)
#   HUIYIN_RASA_CACHE  models, pid, logs   (default ~/.cache/huiyin/rasa)
#   HUIYIN_RASA_DATA   NLU training data   (default <repo>/dialogs/nlu)
#   HUIYIN_RASA_CONFIG pipeline config     (default <repo>/docker/rasa/config.yml)
#   HUIYIN_PYTHON310   a Python 3.10 interpreter to build the venv with (default: pyenv's 3.10, python3.10)
#   PORT               port to listen on   (default 5005)
#   HUIYIN_RASA_START_TIMEOUT  seconds to wait for the server (default 300)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RASA_VERSION_SPEC="rasa==3.6.*"
VENV="${HUIYIN_RASA_VENV:-$HOME/.cache/huiyin/rasa-3.6-py310}"
CACHE="${HUIYIN_RASA_CACHE:-$HOME/.cache/huiyin/rasa}"
DATA="${HUIYIN_RASA_DATA:-$REPO_ROOT/dialogs/nlu}"
CONFIG="${HUIYIN_RASA_CONFIG:-$REPO_ROOT/docker/rasa/config.yml}"
PORT="${PORT:-5005}"
START_TIMEOUT="${HUIYIN_RASA_START_TIMEOUT:-300}"
RUN_DIR="$CACHE/run-$PORT"
PID_FILE="$RUN_DIR/rasa.pid"
LOG_FILE="$RUN_DIR/rasa.log"
MARKER="$VENV/.huiyin-rasa-ready"
CONSTRAINTS="$REPO_ROOT/docker/rasa/constraints.txt"

# Rasa must never phone home or prompt: no telemetry, no interactive questions. TensorFlow quiet and
# without oneDNN's reordered float arithmetic (reproducible models); one server process, so two CPU
# cores are not oversubscribed.
export RASA_TELEMETRY_ENABLED=false
export RASA_TELEMETRY_DEBUG=false
export TF_CPP_MIN_LOG_LEVEL=2
export TF_ENABLE_ONEDNN_OPTS=0
export SANIC_WORKERS=1
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
export MPLCONFIGDIR="$CACHE/matplotlib"

log() { printf '[rasa-service] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

find_python310() {
    if [[ -n "${HUIYIN_PYTHON310:-}" ]]; then
        echo "$HUIYIN_PYTHON310"
        return
    fi
    local candidate
    if command -v pyenv >/dev/null 2>&1; then
        for candidate in "$(pyenv root)"/versions/3.10.*/bin/python; do
            if [[ -x "$candidate" ]]; then
                echo "$candidate"
                return
            fi
        done
    fi
    for candidate in python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    die "no Python 3.10 found (Rasa 3.6 needs Python < 3.11); install one with 'pyenv install 3.10' or set HUIYIN_PYTHON310"
}

rasa_bin() { echo "$VENV/bin/rasa"; }

cmd_setup() {
    if [[ -f "$MARKER" && -x "$(rasa_bin)" ]]; then
        log "reusing $VENV ($(cat "$MARKER"))"
        return
    fi
    local py
    py="$(find_python310)"
    log "creating venv $VENV with $py"
    mkdir -p "$(dirname "$VENV")"
    [[ -x "$VENV/bin/python" ]] || "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade "pip<24.1" "setuptools<70" wheel
    log "installing $RASA_VERSION_SPEC and jieba (pulls TensorFlow; several minutes the first time)"
    "$VENV/bin/python" -m pip install --no-input -c "$CONSTRAINTS" "$RASA_VERSION_SPEC" "jieba>=0.42"
    "$(rasa_bin)" --version >&2 || die "rasa is installed but 'rasa --version' fails"
    # Also record the opt-out in ~/.config/rasa/global.yml, for anyone running this rasa by hand
    # without RASA_TELEMETRY_ENABLED (on its first run Rasa writes "enabled: true" there).
    "$(rasa_bin)" telemetry disable >/dev/null 2>&1 || true
    local version
    version="$("$VENV/bin/python" -c 'import platform, rasa; print(f"rasa {rasa.__version__}, python {platform.python_version()}")')"
    # The marker makes the next setup instant; its content (versions only) also keys the model cache.
    echo "$version" >"$MARKER"
    log "ready: $version"
}

# Copy the training data and the config into $1 and print a hash of them (plus the Rasa version), so
# training is skipped when none changed. Training reads the copy: data edited while a model trains
# cannot end up under the wrong hash.
snapshot() {
    local dir="$1"
    [[ -d "$DATA" ]] || die "no NLU training data at $DATA"
    [[ -f "$CONFIG" ]] || die "no pipeline config at $CONFIG"
    mkdir -p "$dir/nlu"
    find "$DATA" -maxdepth 1 -type f \( -name '*.yml' -o -name '*.yaml' \) -exec cp {} "$dir/nlu/" \;
    [[ -n "$(ls -A "$dir/nlu")" ]] || die "no *.yml training files in $DATA"
    cp "$CONFIG" "$dir/config.yml"
    {
        (cd "$dir" && find nlu config.yml -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
        cat "$MARKER"
    } | sha256sum | cut -c1-16
}

# Print the path of a model trained on the current data and config, training one only if needed.
cmd_train() {
    [[ -x "$(rasa_bin)" && -f "$MARKER" ]] || die "rasa is not installed; run '$0 setup' first"
    mkdir -p "$CACHE/models"
    local work key model
    work="$(mktemp -d "$CACHE/train.XXXXXX")"
    key="$(snapshot "$work")"
    model="$CACHE/models/nlu-$key.tar.gz"
    if [[ -f "$model" ]]; then
        rm -rf "$work"
        log "model up to date: $model"
        echo "$model"
        return
    fi
    log "training an NLU model from $DATA with $CONFIG (log: $CACHE/train.log)"
    local started=$SECONDS
    # Run inside the scratch directory: rasa keeps its .rasa/cache in the working directory.
    if ! (cd "$work" && "$(rasa_bin)" train nlu --nlu nlu --config config.yml --out out \
        --fixed-model-name model) >"$CACHE/train.log" 2>&1 </dev/null; then
        tail -n 40 "$CACHE/train.log" >&2
        rm -rf "$work"
        die "rasa train nlu failed"
    fi
    mv "$work/out/model.tar.gz" "$model"
    rm -rf "$work"
    # Keep the three newest models: enough to switch back, not a growing pile in CI's cache.
    find "$CACHE/models" -name 'nlu-*.tar.gz' -printf '%T@ %p\n' | sort -rn | tail -n +4 | cut -d' ' -f2- |
        xargs -r rm -f
    log "trained in $((SECONDS - started)) s: $model"
    echo "$model"
}

server_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    kill -0 "$pid" 2>/dev/null || return 1
    # A stale pid file must not make us signal an unrelated process that reused the pid.
    grep -q rasa "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

url() { echo "http://127.0.0.1:$PORT"; }

answers() { curl -fsS --max-time 2 "$(url)/status" >/dev/null 2>&1; }

cmd_start() {
    local model="${1:-}" pid
    if pid="$(server_pid)"; then
        log "already running (pid $pid)"
        url
        return
    fi
    [[ -n "$model" ]] || model="$(cmd_train)"
    [[ -f "$model" ]] || die "no model at $model"
    mkdir -p "$RUN_DIR"
    log "starting rasa on $(url) with $model (log: $LOG_FILE)"
    # setsid: the server gets its own process group, so `stop` ends it and its children and nothing else.
    (cd "$RUN_DIR" && exec setsid "$(rasa_bin)" run --enable-api -i 127.0.0.1 -p "$PORT" \
        --model "$model" --log-file "$LOG_FILE" >>"$LOG_FILE.out" 2>&1 </dev/null) &
    echo $! >"$PID_FILE"
    local started=$SECONDS
    until answers; do
        if ! server_pid >/dev/null; then
            tail -n 40 "$LOG_FILE.out" >&2 || true
            die "rasa exited while starting"
        fi
        if ((SECONDS - started > START_TIMEOUT)); then
            tail -n 40 "$LOG_FILE.out" >&2 || true
            cmd_stop
            die "rasa did not answer within $START_TIMEOUT s"
        fi
        sleep 1
    done
    log "ready in $((SECONDS - started)) s"
    url
}

cmd_stop() {
    local pid
    if ! pid="$(server_pid)"; then
        log "not running"
        rm -f "$PID_FILE"
        return
    fi
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}

cmd_status() {
    local pid
    if pid="$(server_pid)" && answers; then
        log "running (pid $pid)"
        url
    else
        log "not running"
        return 1
    fi
}

case "${1:-}" in
    setup) cmd_setup ;;
    train) cmd_train ;;
    start) shift; cmd_start "${1:-}" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
