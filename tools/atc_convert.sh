#!/usr/bin/env bash
# Convert patchline's exported ONNX models into Ascend offline models (.om) with ATC.
#
# Usage: tools/atc_convert.sh [--print] BACKBONE IMAGESIZE SOC_VERSION [MODELS_DIR] [BATCHES]
#        tools/atc_convert.sh --print-seed SOC_VERSION [MODELS_DIR] [BATCHES]
#   BACKBONE     wide_resnet101_2 | wide_resnet50_2 | efficientnet_lite0 | efficientnet_lite1 |
#                efficientnet_lite2 | mobilenet_v2
#   IMAGESIZE    the image size the ONNX files were exported for (e.g. 224)
#   SOC_VERSION  the chip, as `npu-smi info` names it, e.g. Ascend310P3, Ascend310B1, Ascend910B
#   MODELS_DIR   folder holding <backbone>_<imagesize>_layer{2,3}.onnx (default: models)
#   BATCHES      batch sizes the .om accepts (ATC dynamic batch, default: 1,2,4,8)
#   --print      print the two ATC commands instead of running them (no files or ATC needed)
#   --print-seed print them for the reference project's backbone (wide_resnet101_2) at every
#                imagesize of configs/mvtec.yaml (224, 280, 320); "seed" here is that project
#
# What it runs, per model (framework 5 = ONNX); the batch dim stays dynamic (-1) and ATC
# compiles one graph per listed batch size:
#   atc --framework=5 --model=models/B_S_layer2.onnx --output=models/B_S_layer2 \
#       --input_format=NCHW --input_shape="image:-1,3,S,S" --dynamic_batch_size="1,2,4,8" \
#       --soc_version=SOC --log=error
#   atc --framework=5 --model=models/B_S_layer3.onnx --output=models/B_S_layer3 \
#       --input_format=NCHW --input_shape="layer2:-1,C2,ceil(S/8),ceil(S/8)" --dynamic_batch_size="1,2,4,8" \
#       --soc_version=SOC --log=error
# C2 (layer2 channels): wide_resnet* 512, efficientnet_lite0/1 40, efficientnet_lite2 48, mobilenet_v2 32.
# The .om files land beside the .onnx ones under the same names, which is what pipeline files expect.
# ATC itself is not available on patchline's CI machines: there only --print is exercised.
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = "--print-seed" ]; then
    [ "$#" -ge 2 ] || usage
    table="$here/configs/mvtec.yaml"
    sizes=$(grep -o 'imagesize: [0-9]*' "$table" | awk '{print $2}' | sort -un)
    for s in $sizes; do
        "$0" --print wide_resnet101_2 "$s" "$2" "${3:-models}" "${4:-1,2,4,8}"
    done
    exit 0
fi
print=0
if [ "${1:-}" = "--print" ]; then print=1; shift; fi
[ "$#" -ge 3 ] || usage
backbone=$1; size=$2; soc=$3; dir=${4:-models}; batches=${5:-1,2,4,8}

case "$backbone" in
    wide_resnet50_2|wide_resnet101_2) c2=512 ;;
    efficientnet_lite0|efficientnet_lite1) c2=40 ;;
    efficientnet_lite2) c2=48 ;;
    mobilenet_v2) c2=32 ;;
    *) echo "error: unknown backbone '$backbone' (wide_resnet101_2, wide_resnet50_2, efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, mobilenet_v2)" >&2; exit 2 ;;
esac
case "$size" in
    ''|*[!0-9]*) echo "error: IMAGESIZE must be a whole number of pixels, got '$size'" >&2; exit 2 ;;
esac
case "$batches" in
    ''|*[!0-9,]*) echo "error: BATCHES must be batch sizes separated by commas, e.g. 1,2,4,8, got '$batches'" >&2; exit 2 ;;
esac
h2=$(( (size + 7) / 8 ))
l2="$dir/${backbone}_${size}_layer2"
l3="$dir/${backbone}_${size}_layer3"
cmd2=(atc --framework=5 --model="$l2.onnx" --output="$l2" --input_format=NCHW
      --input_shape="image:-1,3,$size,$size" --dynamic_batch_size="$batches" --soc_version="$soc" --log=error)
cmd3=(atc --framework=5 --model="$l3.onnx" --output="$l3" --input_format=NCHW
      --input_shape="layer2:-1,$c2,$h2,$h2" --dynamic_batch_size="$batches" --soc_version="$soc" --log=error)
if [ "$print" = 1 ]; then
    for arg in "${cmd2[@]}"; do case "$arg" in *=*) printf '%s="%s" ' "${arg%%=*}" "${arg#*=}" ;; *) printf '%s ' "$arg" ;; esac; done; echo
    for arg in "${cmd3[@]}"; do case "$arg" in *=*) printf '%s="%s" ' "${arg%%=*}" "${arg#*=}" ;; *) printf '%s ' "$arg" ;; esac; done; echo
    exit 0
fi

for f in "$l2.onnx" "$l3.onnx"; do
    if [ ! -f "$f" ]; then
        echo "error: $f not found; run 'patchline export' for $backbone at $size px first" >&2
        exit 1
    fi
done
if ! command -v atc >/dev/null 2>&1; then
    echo "error: the Ascend 'atc' tool is not on PATH; install the CANN toolkit and source its set_env.sh (e.g. /usr/local/Ascend/ascend-toolkit/set_env.sh), then rerun. The ONNX models in $dir run with ONNX Runtime meanwhile." >&2
    exit 127
fi
set -x
"${cmd2[@]}"
"${cmd3[@]}"
