#!/usr/bin/env bash
# The paper's workload on one CUDA GPU: SD-2.1-unCLIP's architecture (random weights), 24 frames at 512²,
# default settings (20 DDIM steps, 20 tune steps, window 16), bf16 (fp16 where bf16 is missing).
# Usage: scripts/bench_scale_cuda.sh [OUT_DIR]   (default docs/bench/scale-cuda; MODEL_DIR overrides the
# folder the random model is written to, ~11.5 GB, reused on later runs)
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import engine.bench.scale" 2>/dev/null || pip install -e .   # the engine and its dependencies
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
recast-engine bench scale --device cuda --frames 24 --size 512 \
  --model-dir "${MODEL_DIR:-out/sd21-random}" --out "${1:-docs/bench/scale-cuda}"
