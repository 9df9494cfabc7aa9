#!/usr/bin/env bash
# Download, on a machine with a package index, the pure-Python packages that grok-tui's GPU checks need
# and a bare CUDA image (Python 3.12, torch, numpy, rich, typer, safetensors, pytest, pytest-xdist
# already there) lacks, into .whl/ (git-ignored), at the versions the CPU tests run with. tools/gpu-check.sh installs them from there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
  tomli-w==1.2.0 textual==8.2.8 textual-plotext==1.0.1 plotext==5.3.2 platformdirs==4.14.9 \
  mdit-py-plugins==0.7.0 linkify-it-py==2.2.0 uc-micro-py==2.0.0 lion-pytorch==0.2.5 prodigyopt==1.1.2 \
  schedulefree==1.4.1 pytest-asyncio==1.5.0
ls .whl
