#!/usr/bin/env bash
# The ONNX exports of five models checked by onnxruntime (tests/onnx/check_onnxruntime.py): the
# shared MobileNetV2 (TF-'SAME' padding), the ResNet-18 fixture, a fine-tune on hymenoptera
# (fastai head), the Planet multi-label model and the spreadsheet network, each on 8 random inputs
# and real photos. Needs CONVLEARN_BIN and CONVLEARN_DATA; installs onnx and onnxruntime from PyPI
# into a virtual environment cached at $ONNX_VENV.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${CONVLEARN_BIN:?}"
data="${CONVLEARN_DATA:?}"
venv="${ONNX_VENV:-$HOME/.cache/convlearn-onnx-venv}"
if ! "$venv/bin/python" -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "onnx==1.23.2" "onnxruntime==1.32.0" "numpy>=2"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mnv2="$data/weights/mobilenet_v2_imagenet_from_tflite.safetensors"
photos=("$data"/data/images/*)
planet="$data/data/planet_sample"

"$bin" train "$data/data/hymenoptera" --pretrained "$mnv2" --save hymenoptera.safetensors >/dev/null 2>&1
"$bin" train --csv "$planet/labels.csv" --images "$planet/train" --suffix .jpg --pretrained "$mnv2" \
  --save planet.safetensors >/dev/null 2>&1
"$bin" train shapes --arch spreadsheet --epochs 1 --save spreadsheet.safetensors >/dev/null 2>&1

export_one() { # NAME, then the model (or --pretrained WEIGHTS), then the sample images
  local name=$1 model=$2
  shift 2
  if [[ $model == --pretrained ]]; then model="--pretrained $1"; shift; fi
  # shellcheck disable=SC2086
  "$bin" export $model -o "$name.onnx" --samples "$name" --sample-images "$@" >/dev/null
  args+=("$name=$work/$name.onnx:$work/$name")
}
args=()
export_one mobilenet_v2_tf_same --pretrained "$mnv2" "${photos[@]}"
export_one resnet18_fixture --pretrained "$data/fixtures/resnet18_bnrand.safetensors" "${photos[@]}"
export_one hymenoptera_fastai_head hymenoptera.safetensors "$data"/data/hymenoptera/val/ants/*[0-4].jpg
export_one planet_multi_label planet.safetensors $(ls "$planet"/train/*.jpg | head -8)
export_one spreadsheet spreadsheet.safetensors "${photos[@]}"
"$venv/bin/python" "$here/check_onnxruntime.py" "${args[@]}"
