#!/usr/bin/env bash
# Runs the numerical tests (pytest -m numerics) under the machine's best CPU kernels and under
# forced lower ones, each with 1 and with 2 torch threads: a tolerance that only holds for the
# kernels or thread count of the machine it was written on fails here.
#
# The lower configuration forces ATen's portable kernels (ATEN_CPU_CAPABILITY=default) and
# oneDNN's AVX2 kernels (ONEDNN_MAX_CPU_ISA=AVX2), which is what an AVX2-only processor such as
# an AMD EPYC of the Zen 2/3 generations runs. Both are lowered together: ATen's portable
# bfloat16 attention cannot use the AVX-512/AMX packing that oneDNN would otherwise offer
# ("pack_vnni2 is only supported when avx512 is supported"), a mix no real processor has.
#
# Extra arguments go to pytest, e.g. scripts/test-numerics.sh tests/training -x
set -uo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
export HF_HUB_OFFLINE=1

failed=()
for kernels in best lower; do
  for threads in 1 2; do
    settings=(PICKWISE_TEST_TORCH_THREADS="$threads" OMP_NUM_THREADS="$threads")
    if [[ $kernels == lower ]]; then
      settings+=(ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2)
    fi
    label="$kernels kernels, $threads thread(s): ${settings[*]}"
    echo "== numerics with $label"
    if ! env "${settings[@]}" "$BIN/pytest" -q -m numerics "$@"; then
      failed+=("$label")
    fi
  done
done

if ((${#failed[@]})); then
  printf 'numerics FAILED with %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "numerics passed with best and lower kernels, 1 and 2 threads"
