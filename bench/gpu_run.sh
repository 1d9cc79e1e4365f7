#!/usr/bin/env bash
# The GPU benchmarks in one command, for a session with a lent GPU (bench/RESULTS.md, "GPU
# benchmarks: how to run them"): installs the carried wheels from .whl/ if present, runs
# bench/gpu_generate.py, bench/gpu_dpo.py and the checkpointing variants under time limits
# that keep the whole run under 9 minutes, tees each log into $OUT (or bench/gpu-logs/ when
# OUT is unset) and prints a summary.
#
#   bash bench/gpu_run.sh            # on the GPU machine
#   OUT=/tmp/x bash bench/gpu_run.sh --tiny   # CPU smoke test of the same steps, tiny models
set -uo pipefail
cd "$(dirname "$0")/.."
TINY=""
[ "${1:-}" = "--tiny" ] && TINY="--tiny"
OUT="${OUT:-bench/gpu-logs}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
started=$(date +%s)

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl 2>&1 | tee "$OUT/pip.log" || exit 1
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
{
  "$PY" -c 'import torch, diffusers, peft, transformers; print("torch", torch.__version__, "diffusers", diffusers.__version__, "peft", peft.__version__, "transformers", transformers.__version__)'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
} 2>&1 | tee "$OUT/versions.log"

# name, time limit in seconds, command; limits sum to 510 s (8.5 min) plus installs.
run() {
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$PY" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && echo "=== $name: stopped at its ${limit}s limit" | tee -a "$OUT/$name.log"
  echo "$name rc=$rc" >>"$OUT/status.txt"
}
: >"$OUT/status.txt"
if [ -n "$TINY" ]; then
  run generate 300 bench/gpu_generate.py --tiny
  run dpo 300 bench/gpu_dpo.py --tiny
  run dpo_variants 300 bench/gpu_dpo.py --tiny --no-ours-compile --variants none,full
  run dpo_cost 300 bench/dpo_cost.py --tiny
else
  run generate 220 bench/gpu_generate.py --repeats 3
  run dpo 190 bench/gpu_dpo.py --repeats 2 --steps 8
  run dpo_variants 100 bench/gpu_dpo.py --repeats 1 --steps 8 --no-ours-compile \
    --variants none,full --baseline-checkpointing none
fi

echo
echo "=== summary ($(( $(date +%s) - started )) s in all; logs in $OUT)"
cat "$OUT/status.txt"
grep -h "^summary:" "$OUT"/*.log || echo "no summary line: see the logs"
