#!/usr/bin/env bash
# The issue-16 GPU check as one prepared script (run it where `nvidia-smi` shows a GPU, from the
# repository root, in the project's venv): training throughput of the U-Net and DiT `base`
# presets against denoising-diffusion-pytorch's Unet1D at equal parameters (fp32, bf16 autocast,
# torch.compile), sampling throughput at batch 1024 against the network's forward MFU, and the
# nearest-neighbour memorization audit at 100k × 1M. Each figure goes to $OUT (default
# gpu-results/) as a text file; total ≈ 6-8 minutes on one H200.
#
#   bash benchmarks/gpu_suite.sh [OUT]
set -uo pipefail
OUT=${1:-${OUT:-gpu-results}}
mkdir -p "$OUT"
PY=${PYTHON:-python}
run() {  # name, command...: one figure, its own log; a failure is logged, the rest still run
  local name=$1; shift
  echo "== $name: $*" | tee "$OUT/$name.txt"
  timeout "${KNN_TIMEOUT:-300}" "$@" >> "$OUT/$name.txt" 2>&1 || echo "FAILED (exit $?)" >> "$OUT/$name.txt"
  tail -n 12 "$OUT/$name.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/hardware.txt" 2>&1
$PY -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" \
  >> "$OUT/hardware.txt" 2>&1
cat "$OUT/hardware.txt"
for model in unet dit; do
  run "train_${model}_base_fp32" $PY benchmarks/train_speed.py --device cuda --model $model \
    --preset base --batch 256 --length 256 --steps 20 --compile
  run "train_${model}_base_bf16" $PY benchmarks/train_speed.py --device cuda --model $model \
    --preset base --batch 256 --length 256 --steps 20 --compile --bf16
done
run sample_unet_base $PY benchmarks/sample_speed.py --device cuda --preset base --batch 1024
run sample_unet_base_bf16 $PY benchmarks/sample_speed.py --device cuda --preset base \
  --batch 1024 --bf16
# sigdiff on the GPU against scikit-learn brute force on the machine's CPU cores
KNN_TIMEOUT=600 run knn_100k_1M $PY benchmarks/metrics_speed.py --device cuda --n-gen 100000 \
  --n-train 1000000 --rounds 1 --threads "$(nproc)" --skip prdc,sigdiff_prdc
