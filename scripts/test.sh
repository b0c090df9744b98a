#!/usr/bin/env bash
# lmood's test command: sets up everything the tests need, then runs them.
#
#   scripts/test.sh            full run: format, vet, unit + oracle + real-model tests, short fuzz
#   LMOOD_SKIP_OLLAMA=1 ...    leave out the ollama server tests
#   LMOOD_SKIP_QWEN=1 ...      leave out the second real model (Qwen2.5-Coder-0.5B, 491 MB + 2.4 GB converted)
#   LMOOD_SKIP_GEMMA=1 ...     leave out the third real model (Gemma 3 270M, 253 MB + 1.1 GB converted)
#
# Installs, all cached under ${XDG_CACHE_HOME:-$HOME/.cache}/lmood and checked by SHA-256:
#   - onnxruntime and the default model (SmolLM2-135M GGUF), via `lmood setup`
#   - Qwen2.5-Coder-0.5B (qwen2), via `lmood pull qwen2.5-coder-0.5b`, for its oracle and token-level tests
#   - Gemma 3 270M (gemma3), via `lmood pull gemma3-270m`, for its oracle test
#   - headless Chromium from Debian's packages, for the browser test of `lmood serve`'s page
#   - a Python venv with the oracle packages (scripts/oracle-requirements.txt)
#   - llama.cpp's tokenizer tests (models/ggml-vocab-*.gguf{,.inp,.out}) from the
#     llama-cpp-python 0.3.36 source archive on PyPI (scripts/llamaref.sh sdist)
#   - llama.cpp's library from that archive plus our driver, built once with cmake + ninja
#     (scripts/llamaref.sh build), the reference of the per-family logits tests
#   - an ollama server built from source (scripts/ollama.sh), for the `ollama:NAME` tests
#   - Chromium from Debian's packages (if missing), for the web page's browser test
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lmood"
mkdir -p "$cache"
step() { printf '\n== %s\n' "$*"; }

step "format and vet"
unformatted="$(gofmt -l cmd internal)"
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
go vet ./...

step "onnxruntime and default model (lmood setup)"
go build -o "$cache/bin/lmood" ./cmd/lmood
"$cache/bin/lmood" setup --quiet
export LMOOD_TEST_GGUF="$cache/downloads/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ "${LMOOD_SKIP_QWEN:-0}" != 1 ]; then
  step "second real model (lmood pull qwen2.5-coder-0.5b)"
  "$cache/bin/lmood" pull qwen2.5-coder-0.5b
  export LMOOD_TEST_GGUF_QWEN="$cache/downloads/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
fi
if [ "${LMOOD_SKIP_GEMMA:-0}" != 1 ]; then
  step "third real model, another family (lmood pull gemma3-270m)"
  "$cache/bin/lmood" pull gemma3-270m
  export LMOOD_TEST_GGUF_GEMMA3="$cache/downloads/gemma-3-270m-q4_k_m.gguf"
fi

step "python oracles"
venv="$cache/oracle-venv"
req_sum="$(sha256sum scripts/oracle-requirements.txt | cut -c1-16)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$req_sum" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r scripts/oracle-requirements.txt
  echo "$req_sum" > "$venv/.requirements"
fi
export LMOOD_PYTHON="$venv/bin/python"
export LMOOD_REQUIRE_ORACLE=1

step "llama.cpp tokenizer tests (llama-cpp-python 0.3.36 source archive)"
lcpp_sha="$(bash scripts/llamaref.sh sha)"
vocabs="$cache/llamacpp-vocabs-0.3.36"
if [ "$(cat "$vocabs/.sha256" 2>/dev/null)" != "$lcpp_sha" ]; then
  lcpp_tar="$(bash scripts/llamaref.sh sdist)"
  rm -rf "$vocabs" && mkdir -p "$vocabs"
  tar -xzf "$lcpp_tar" -C "$vocabs" --strip-components=4 --wildcards \
    'llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-*'
  echo "$lcpp_sha" > "$vocabs/.sha256"
fi
export LMOOD_LLAMACPP_VOCABS="$vocabs"

step "llama.cpp as the reference forward pass (built from the same archive once)"
if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null || ! command -v c++ >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake ninja-build g++ >/dev/null
  fi
fi
LMOOD_LLAMAREF="$(bash scripts/llamaref.sh build)"
export LMOOD_LLAMAREF

if [ "${LMOOD_SKIP_OLLAMA:-0}" != 1 ]; then
  step "ollama server (built from source once)"
  bash scripts/ollama.sh build
  # This run's own server and state dir: with the per-user default, a
  # second run at the same time reused the first one's server, and the
  # first run's exit stopped it under the second.
  LMOOD_OLLAMA_STATE="$(mktemp -d "${TMPDIR:-/tmp}/lmood-ollama.XXXXXX")"
  export LMOOD_OLLAMA_STATE
  LMOOD_TEST_OLLAMA_HOST="$(bash scripts/ollama.sh start)"
  export LMOOD_TEST_OLLAMA_HOST
  trap 'bash scripts/ollama.sh stop || true' EXIT
fi

step "headless chromium (the browser test of lmood serve's page)"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: install it (Debian: apt-get install chromium)"; exit 1
  fi
fi

step "go test"
go test -count=1 -timeout 40m ./...

step "fuzz the GGUF parser (30 s)"
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 30s ./internal/gguf

step "done"
