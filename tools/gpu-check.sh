#!/usr/bin/env bash
# The GPU checks in one command (about 6-8 minutes on one H100/H200): the CUDA tests (sync checker,
# compiled and bf16 runs, the profiler path, GPU status), then `grok-tui bench --suite` and the step
# profiles in fp32 and bf16. Results go to $OUT (default gpu-results/): tests.log, suite.json,
# profile-fp32.json, profile-bf16.json, and the printed tables in check.log.
#   tools/gpu-wheels.sh        # once, where pip can reach an index: the packages a bare CUDA image lacks
#   tools/gpu-check.sh [STAGE] # on the GPU machine, from the repository root; .whl/ is git-ignored, so
#                              # a copy of the tree must take it along (the device tool: carry [".whl"])
# STAGE: tests (the CUDA tests, about 2 minutes), suite (bench --suite), profile, or all (the default).
# QUICK=1 shrinks the suite (for a dry run on a CPU).
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:-all}
case $stage in tests|suite|profile|all) ;; *) echo "usage: tools/gpu-check.sh [tests|suite|profile|all]" >&2; exit 2;; esac
out=${OUT:-gpu-results}
failed=""
mkdir -p "$out"
py=${PYTHON:-python3}
if ! $py -c "import textual, tomli_w, lion_pytorch, prodigyopt, schedulefree" 2>/dev/null; then
  if [ ! -d .whl ]; then
    echo "textual and the optimizer packages are missing and there is no .whl/ (tools/gpu-wheels.sh; carry it)" >&2
    exit 1
  fi
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  $py -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
} 2>&1 | tee -a "$out/check.log"
if [ "$stage" = tests ] || [ "$stage" = all ]; then
  $py -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_no_sync.py tests/test_bench_profile.py 2>&1 \
    | tee "$out/tests.log" | tail -5 | tee -a "$out/check.log"
  [ "${PIPESTATUS[0]}" = 0 ] || failed="$failed tests"
fi
if [ "${QUICK:-0}" = 1 ]; then
  suite=(--preset smoke --steps 200 --eval-every 50 --bench-steps 20 --repeat 1 --suite-members 3 --suite-sample 1)
else
  suite=(--bench-steps 300 --repeat 3 --suite-members 64 --suite-sample 4)
fi
if [ "$stage" = suite ] || [ "$stage" = all ]; then
  $py -m grok_tui bench --suite "${suite[@]}" --out "$out/suite.json" 2>&1 | tee -a "$out/check.log"
  [ "${PIPESTATUS[0]}" = 0 ] || failed="$failed suite"
fi
if [ "$stage" = profile ] || [ "$stage" = all ]; then
  for p in fp32 bf16; do
    $py -m grok_tui bench --profile --precision "$p" --out "$out/profile-$p.json" 2>&1 | tee -a "$out/check.log"
    [ "${PIPESTATUS[0]}" = 0 ] || failed="$failed profile-$p"
  done
fi
echo "results in $out/${failed:+; failed:$failed}"
[ -z "$failed" ]
