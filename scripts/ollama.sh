#!/usr/bin/env bash
# A private ollama server for lmood's tests (issue 6), built from source.
#
#   scripts/ollama.sh build    compile ollama once (go install; ~6 min on 2 cores), then reuse it
#   scripts/ollama.sh start    serve on a free loopback port with its own model dir;
#                              prints the OLLAMA_HOST to use (the only line on stdout)
#   scripts/ollama.sh stop     stop that server and delete its model dir
#   scripts/ollama.sh host     print the running server's OLLAMA_HOST (exit 1 if none)
#   scripts/ollama.sh bin      print the path of the ollama binary
#
# Typical use (what scripts/test.sh does):
#   scripts/ollama.sh build
#   export LMOOD_TEST_OLLAMA_HOST="$(scripts/ollama.sh start)"
#   go test ./internal/ollama ./cmd/lmood
#   scripts/ollama.sh stop
#
# Environment:
#   OLLAMA_VERSION        ollama release to build (default v0.6.5, the one in go.mod)
#   LMOOD_OLLAMA_BIN_DIR  where the binary goes (default ${XDG_CACHE_HOME:-~/.cache}/lmood/ollama/VERSION)
#   LMOOD_OLLAMA_STATE    the server's state dir: models, home, log, pid
#                         (default ${TMPDIR:-/tmp}/lmood-ollama-$UID)
#   LMOOD_OLLAMA_START_TIMEOUT  seconds to wait for the server to answer (default 60)
#
# The server never touches ~/.ollama: HOME and OLLAMA_MODELS point into the
# state dir, and it listens on 127.0.0.1 only.
set -euo pipefail

version="${OLLAMA_VERSION:-v0.6.5}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lmood"
bindir="${LMOOD_OLLAMA_BIN_DIR:-$cache/ollama/$version}"
bin="$bindir/ollama"
state="${LMOOD_OLLAMA_STATE:-${TMPDIR:-/tmp}/lmood-ollama-$(id -u)}"
pidfile="$state/pid"
hostfile="$state/host"
logfile="$state/server.log"

say() { printf 'ollama.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# answers HOST: does an ollama server answer /api/version there?
answers() { curl -fsS --max-time 2 "http://$1/api/version" >/dev/null 2>&1; }

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid="$(cat "$pidfile")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

cmd_build() {
  if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    say "ollama $version already built: $bin"
    return 0
  fi
  command -v go >/dev/null || die "go is not on PATH"
  mkdir -p "$bindir"
  say "building ollama $version from source into $bindir (takes a few minutes)"
  local start=$SECONDS
  # GOFLAGS from the lmood module (e.g. -mod=...) must not leak into this build.
  GOFLAGS=-buildvcs=false GOBIN="$bindir" go install "github.com/ollama/ollama@$version"
  "$bin" --version >/dev/null 2>&1 || die "built $bin but it does not run"
  say "built $bin in $((SECONDS - start))s"
}

cmd_start() {
  command -v curl >/dev/null || die "curl is needed to wait for the server"
  [ -x "$bin" ] || die "no ollama binary at $bin: run 'scripts/ollama.sh build' first"
  if pid="$(running_pid)" && [ -f "$hostfile" ] && answers "$(cat "$hostfile")"; then
    say "already running (pid $pid)"
    cat "$hostfile"
    return 0
  fi
  cmd_stop 2>/dev/null || true # a stale or hung server from an earlier run
  mkdir -p "$state/models" "$state/home"
  # Port 0: the kernel picks a free port, the server logs which one. No race
  # between choosing a port and binding it.
  HOME="$state/home" OLLAMA_HOST=127.0.0.1:0 OLLAMA_MODELS="$state/models" \
    OLLAMA_NOPRUNE=1 OLLAMA_ORIGINS="" \
    nohup "$bin" serve >"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local deadline=$((SECONDS + ${LMOOD_OLLAMA_START_TIMEOUT:-60})) host=""
  while [ $SECONDS -lt $deadline ]; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      tail -n 20 "$logfile" >&2 || true
      die "the server exited during start-up (log above, full log $logfile)"
    fi
    if [ -z "$host" ]; then
      host="$(grep -o 'Listening on 127\.0\.0\.1:[0-9]*' "$logfile" 2>/dev/null | head -n1 | sed 's/^Listening on //')" || true
    fi
    if [ -n "$host" ] && answers "$host"; then
      echo "$host" >"$hostfile"
      say "serving on $host (pid $(cat "$pidfile"), models in $state/models, log $logfile)"
      echo "$host"
      return 0
    fi
    sleep 0.2
  done
  tail -n 20 "$logfile" >&2 || true
  cmd_stop || true
  die "the server did not answer within ${LMOOD_OLLAMA_START_TIMEOUT:-60}s"
}

cmd_stop() {
  local pid
  if pid="$(running_pid)"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "pid $pid did not stop; sending SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
    say "stopped pid $pid"
  else
    say "no server running"
  fi
  rm -rf "$state"
}

cmd_host() {
  running_pid >/dev/null && [ -f "$hostfile" ] || die "no server running (scripts/ollama.sh start)"
  cat "$hostfile"
}

case "${1:-}" in
  build) cmd_build ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  host) cmd_host ;;
  bin) echo "$bin" ;;
  *)
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
