#!/usr/bin/env bash
# Installs what is missing, builds into build/ (with the CUDA backend whenever nvcc is present),
# and runs the whole CTest suite. Arguments go to ctest, e.g. tests/run.sh -L unit, or
# tests/run.sh -LE slurm to leave out the Slurm tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh --with-slurm
# nvcc is often installed outside PATH.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" "$@"
