#!/usr/bin/env bash
# The sigdiff run of docs/results/sines-protocol (see README.md): small U-Net preset (v-prediction),
# large-t + floor timestep sampler, 10,000 steps at batch 64 on one CPU thread.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
S=docs/results/sines-protocol
.venv/bin/sigdiff train --preset small --data $S/data/train.zarr --out $S/data/run \
  --steps 10000 --checkpoint-every 2000 --seed 0 \
  --sampler ci_gaussian --param center=0.8 --param width=0.6 --floor 0.3 --quiet
