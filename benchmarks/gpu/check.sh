#!/usr/bin/env bash
# One prepared GPU check, run on the device machine with `.gpu` carried (made by
# benchmarks/gpu/prepare.sh): the tasks on CUDA with their baselines, the Ray gang on
# the GPU, and the time-to-accuracy projection with a measured evaluation. About 2½
# minutes on an H100; each step's output is also written under $OUT.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.gpu/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
nvidia-smi -L
python3 -c "import torch, ray, pydantic; print(torch.__version__, ray.__version__, pydantic.VERSION)"
timeout 150 python3 benchmarks/gpu_tasks_check.py --rounds 30 2>&1 | tee "$OUT/tasks.txt"
timeout 180 python3 benchmarks/gpu_ray_check.py --rounds 60 2>&1 | grep -v '^\s*$' | tee "$OUT/ray.txt"
timeout 200 python3 -m benchmarks.time_to_accuracy --device cuda --hidden 32 --rounds 200 \
  --repeats 15 2>&1 | tee "$OUT/tta.txt"
timeout 120 python3 -m benchmarks.time_to_accuracy --device cuda --hidden 128 --rounds 200 \
  --repeats 15 --rules lasg,laq 2>&1 | tee "$OUT/tta128.txt"
