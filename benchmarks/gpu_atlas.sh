#!/usr/bin/env bash
# The complete VGG16 atlas on one GPU machine: the command given to the device tool's `run`
# (README, "GPU atlas"). Two calls back to back on one machine, as the weights and the tree
# together are over the 64 MiB a call may carry:
#   bash benchmarks/gpu_atlas.sh store        carry .gpu/weights/part1: keeps that part under /tmp
#   bash benchmarks/gpu_atlas.sh run [FLAGS]  carry .gpu/weights/part2 and .gpu/wheels: restores the
#       weights and checks their SHA-256, installs the wheels (Keras and what the render path lacks
#       there), then runs `gpu_atlas.py run [FLAGS]`, which writes its chunks and summary to $OUT.
set -uo pipefail
T0=$(date +%s)
cd "$(dirname "$0")/.." || exit 2
KEEP=/tmp/filter-atlas-gpu
WEIGHTS="$KEEP/vgg16_imagenet_notop.h5"
SHA256=5ffcc3e2b95af5308e66dbecb80d746dc9161e354eea851fbeab09a6fe1287d2  # vgg16_imagenet_notop.h5
mkdir -p "$KEEP/parts"
for part in .gpu/weights/*/*.part*of*; do
  if [ -f "$part" ]; then cp "$part" "$KEEP/parts/"; fi
done
echo "weights parts kept in $KEEP/parts: $(ls "$KEEP/parts" | tr '\n' ' ')"
mode=${1:-run}
shift || true
if [ "$mode" = store ]; then exit 0; fi
if [ "$mode" != run ]; then echo "usage: gpu_atlas.sh store | run [gpu_atlas.py run flags]" >&2; exit 2; fi
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not found"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$KEEP/site" \
  .gpu/wheels/*.whl || exit 2
export PYTHONPATH="$KEEP/site:$PWD/generator" KERAS_BACKEND=jax PYTHONUNBUFFERED=1 GPU_ATLAS_T0=$T0
python3 benchmarks/gpu_atlas.py weights-unpack "$KEEP"/parts/* "$WEIGHTS" --sha256 "$SHA256" || exit 2
exec python3 benchmarks/gpu_atlas.py run --weights "$WEIGHTS" --work "$KEEP/work" --out "${OUT:?OUT is not set}" "$@"
