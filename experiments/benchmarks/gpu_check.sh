#!/usr/bin/env bash
# The GPU checks of issue 18 as one script, sized for one 10-minute device call:
#   1. a CUDA build of JAX: the machine's own if JAX already sees a GPU, else the wheels
#      carried in .whl/ (see experiments/benchmarks/README.md, "GPU");
#   2. on the GPU: fused == scan in float32 and the float64 gradient identities;
#   3. experiments/benchmarks/gpu_benchmark.py: LSTM and GRU against PyTorch's cuDNN and
#      jax.experimental.rnn, float32 and bfloat16, the four CPU shapes and two GPU-sized ones.
# Logs and results.json go to $OUT (the device tool's output folder), else gpu_check_out/.
#
#   bash experiments/benchmarks/gpu_check.sh           # on the GPU machine
#   bash experiments/benchmarks/gpu_check.sh --smoke   # anywhere: CPU, tiny shapes, 2 repeats
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
python="${PYTHON:-python3}"
smoke=""
[ "${1:-}" = "--smoke" ] && smoke="--smoke"
export PYTHONUNBUFFERED=1

has_gpu() { "$python" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; }
if [ -z "$smoke" ] && ! has_gpu; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  has_gpu || { echo "no GPU backend in JAX, and no CUDA wheels in .whl/ made one" >&2; exit 2; }
fi
# the library from this checkout, without installing it (the machine has its dependencies)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$python" -c "import jax, lstm_jax; print('jax', jax.__version__, jax.devices())" | tee "$out/device.txt"

# 2. the identities on the device (the tests pick float64 themselves where they need it)
tests=(tests/test_fused.py tests/test_gradient_identities.py)
[ -n "$smoke" ] && tests=(tests/test_fused.py::test_fused_equals_scan_float64)
"$python" -m pytest -q -p no:cacheprovider -o addopts="" -x "${tests[@]}" 2>&1 \
  | tail -n 30 | tee "$out/tests.log"
status=${PIPESTATUS[0]}

# 3. the benchmark
"$python" experiments/benchmarks/gpu_benchmark.py $smoke --out "$out/results.json" 2>&1 \
  | tee "$out/benchmark.log"
bench=${PIPESTATUS[0]}
exit $(( status != 0 ? status : bench ))
