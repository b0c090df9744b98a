#!/usr/bin/env bash
# Regenerates the golden files of lmood's transformers reference test
# (internal/arch/hfref_test.go, which itself needs no Python):
#
#   scripts/hfref.sh [FAMILY...]     default: every family
#
# For each family, scripts/hfref/make_fixtures.py builds a tiny seeded Hugging Face model
# and tokenizer, converts it with llama.cpp's own convert_hf_to_gguf.py (--outtype f32) taken
# from the pinned llama-cpp-python 0.3.36 source archive (scripts/llamaref.sh sdist), and
# records transformers' hidden states and logits on fixed token IDs into
# internal/arch/testdata/hfref/ ({family}.gguf, {family}.f32, index.json).
#
# The Python environment (scripts/hfref/requirements.txt: torch CPU, transformers, tokenizers,
# sentencepiece) is built once under ${XDG_CACHE_HOME:-$HOME/.cache}/lmood/hfref-venv-<hash>/
# (about 7 GB, most of it torch's CUDA libraries); LMOOD_HFREF_PYTHON=/path/to/python uses an existing one instead, which must hold
# the same packages. The converter files are extracted into .../lmood/hfref-convert-<archive sha>/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lmood"
req="$root/scripts/hfref/requirements.txt"
mkdir -p "$cache"

py="${LMOOD_HFREF_PYTHON:-}"
if [ -z "$py" ]; then
  venv="$cache/hfref-venv-$(sha256sum "$req" | cut -c1-12)"
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
    rm -rf "$venv"
    echo "hfref: building $venv from $req" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    touch "$venv/.complete"
  fi
  py="$venv/bin/python"
fi

tarball="$(bash "$root/scripts/llamaref.sh" sdist)"
sha="$(bash "$root/scripts/llamaref.sh" sha)"
conv="$cache/hfref-convert-${sha:0:12}"
if [ ! -f "$conv/.complete" ]; then
  rm -rf "$conv" && mkdir -p "$conv"
  tar -xzf "$tarball" -C "$conv" --strip-components=3 \
    llama_cpp_python-0.3.36/vendor/llama.cpp/convert_hf_to_gguf.py \
    llama_cpp_python-0.3.36/vendor/llama.cpp/conversion \
    llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py
  touch "$conv/.complete"
fi

export TQDM_DISABLE=1 # no progress bars from the converter
out="$root/internal/arch/testdata/hfref"
mkdir -p "$out"
"$py" "$root/scripts/hfref/make_fixtures.py" --llamacpp "$conv" --archive "$tarball" --out "$out" "$@" \
  2> >(grep -v '^INFO:\|^Writing:' >&2)
echo "hfref: golden files in $out; check them with: go test ./internal/arch -run TestTransformersReference -v" >&2
