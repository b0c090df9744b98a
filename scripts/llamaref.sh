#!/usr/bin/env bash
# llama.cpp as the reference forward pass of lmood's tests.
#
#   scripts/llamaref.sh sdist   download (once) and verify the llama-cpp-python 0.3.36
#                               source archive; print its path
#   scripts/llamaref.sh sha     print the archive's pinned SHA-256
#   scripts/llamaref.sh build   build llama.cpp's library (CPU backend, static, Release)
#                               and our driver internal/arch/testdata/llamaref/llamaref.cpp
#                               with cmake + ninja, once; print the driver's path
#
# The build lands in ${XDG_CACHE_HOME:-$HOME/.cache}/lmood/llamaref-<archive sha>-<driver sha>/
# and is reused while neither the archive nor the driver (its .cpp, its CMakeLists.txt and
# the flags below) changes. Native CPU detection is off and AVX2 on: a native build crashed
# here with "illegal instruction". One line of ggml is changed before building: the CPU
# backend computes GELU (GPT-2's MLP, Gemma's GeGLU) from a table indexed by the input
# rounded to float16 (#define GGML_GELU_FP16 in ggml-cpu/vec.h), an approximation with
# relative errors up to ~5e-4 per value that has nothing to do with how a GGUF is read;
# without the define ggml evaluates the same tanh formula in float32.
# Progress goes to stderr; stdout holds only the path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lmood"
url="https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-0.3.36.tar.gz"
sha="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
tarball="$cache/downloads/llama_cpp_python-0.3.36.tar.gz"
driver="$root/internal/arch/testdata/llamaref"
flags=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_CCACHE=OFF
  -DGGML_OPENMP=ON -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BACKEND_DL=OFF)
patches="exact-gelu" # the source change below, part of the build's cache key

sdist() {
  if [ ! -f "$tarball" ] || ! echo "$sha  $tarball" | sha256sum -c --status; then
    mkdir -p "$cache/downloads"
    echo "downloading $url" >&2
    curl -fsSL --retry 3 -o "$tarball.part" "$url"
    echo "$sha  $tarball.part" | sha256sum -c --quiet >&2
    mv "$tarball.part" "$tarball"
  fi
  echo "$tarball"
}

build() {
  sdist >/dev/null
  local dsha dir
  dsha="$(cat "$driver/llamaref.cpp" "$driver/CMakeLists.txt" <(echo "${flags[*]} $patches") | sha256sum | cut -c1-12)"
  dir="$cache/llamaref-${sha:0:12}-$dsha"
  if [ ! -x "$dir/llamaref" ]; then
    command -v cmake >/dev/null && command -v ninja >/dev/null && command -v c++ >/dev/null || {
      echo "llamaref: building llama.cpp needs cmake, ninja and a C++ compiler (Debian: apt-get install cmake ninja-build g++)" >&2
      exit 1
    }
    local start
    tmp="$(mktemp -d "$cache/llamaref-build.XXXXXX")" # global: the EXIT trap removes it
    trap 'rm -rf "$tmp"' EXIT
    start=$SECONDS
    echo "llamaref: building llama.cpp (llama-cpp-python 0.3.36) and the driver in $tmp" >&2
    tar -xzf "$tarball" -C "$tmp" --exclude='llama_cpp_python-0.3.36/vendor/llama.cpp/models/*' 'llama_cpp_python-0.3.36/vendor/llama.cpp'
    local vec="$tmp/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml/src/ggml-cpu/vec.h"
    grep -qx '#define GGML_GELU_FP16' "$vec" || { echo "llamaref: $vec has no GGML_GELU_FP16 define to remove" >&2; exit 1; }
    sed -i 's|^#define GGML_GELU_FP16$|// #define GGML_GELU_FP16 (removed by lmood: exact float32 GELU)|' "$vec"
    cmake -S "$driver" -B "$tmp/build" "${flags[@]}" \
      -DLLAMA_SRC="$tmp/llama_cpp_python-0.3.36/vendor/llama.cpp" >"$tmp/cmake.log" 2>&1 ||
      { cat "$tmp/cmake.log" >&2; exit 1; }
    ninja -C "$tmp/build" llamaref >"$tmp/ninja.log" 2>&1 || { tail -50 "$tmp/ninja.log" >&2; exit 1; }
    mkdir -p "$dir.tmp"
    cp "$tmp/build/llamaref" "$dir.tmp/llamaref"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    echo "llamaref: built in $((SECONDS - start)) s" >&2
  fi
  echo "$dir/llamaref"
}

case "${1:-}" in
  sdist) sdist ;;
  sha) echo "$sha" ;;
  build) build ;;
  *) echo "usage: scripts/llamaref.sh sdist|sha|build" >&2; exit 2 ;;
esac
