#!/usr/bin/env bash
# Regenerates onnx.pb.go from the official onnx.proto.
#
# The .proto file is not kept in this repository: it is taken from the
# `onnx` package on PyPI (pinned below), so the generated types always match
# a released ONNX IR. Needs: python3 with pip, protoc (Debian: protobuf-compiler)
# and protoc-gen-go (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12).
set -euo pipefail
ONNX_VERSION=1.20.0
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: "onnx==${ONNX_VERSION}" -d "$tmp"
python3 - "$tmp" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/onnx-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    open(sys.argv[1] + "/onnx.proto", "wb").write(z.read("onnx/onnx.proto"))
PY
protoc --proto_path="$tmp" \
  --go_out="$here" --go_opt=paths=source_relative \
  --go_opt=Monnx.proto=github.com/lmood/lmood/internal/onnx/onnxpb \
  "$tmp/onnx.proto"
echo "generated $here/onnx.pb.go from onnx ${ONNX_VERSION}"
