#!/usr/bin/env bash
# The quick start: installs what is missing, builds, and trains the default model
# (jobs/configs/fashion_mnist_mlp.toml) on Fashion-MNIST with mpirun on this machine.
#   jobs/run-local.sh                    # one rank per core
#   jobs/run-local.sh -n 4               # four ranks
#   jobs/run-local.sh --set train.epochs=5 --set optimizer.lr=0.002   # passed to `lockstep train`
# Environment: LOCKSTEP_RANKS (ranks, default: cores), LOCKSTEP_RUN_DIR (default runs/local-<time>),
# OPENBLAS_NUM_THREADS (BLAS threads per rank, default 1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

np=${LOCKSTEP_RANKS:-$(nproc)}
np_from="LOCKSTEP_RANKS"
if [ "${1:-}" = "-n" ]; then
  np=${2:-}
  np_from="-n"
  shift $(($# >= 2 ? 2 : 1))
fi
# Checked before anything is installed or built.
if ! [[ "$np" =~ ^[1-9][0-9]*$ ]]; then
  echo "jobs/run-local.sh: $np_from needs a number of ranks >= 1, got '$np' (e.g. jobs/run-local.sh -n 4)" >&2
  exit 2
fi

scripts/install-deps.sh
scripts/build.sh

run_dir=${LOCKSTEP_RUN_DIR:-runs/local-$(date +%Y%m%d-%H%M%S)}
extra=()
# Under mpirun the ranks write to a pseudo-terminal even when this script's output goes to a
# file; draw the progress bar only when a person is watching.
[ -t 1 ] || extra+=(--set train.progress=false)

source scripts/mpi-flags.sh
lockstep_mpi_flags "$np"
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
echo "+ mpirun -np $np ${MPI_FLAGS[*]} build/lockstep train --config jobs/configs/fashion_mnist_mlp.toml --run-dir $run_dir${extra[*]:+ ${extra[*]}} $*"
rc=0
lockstep_mpirun -np "$np" "${MPI_FLAGS[@]}" build/lockstep train --config jobs/configs/fashion_mnist_mlp.toml \
  --run-dir "$run_dir" "${extra[@]}" "$@" || rc=$?
if [ "$rc" -eq 75 ]; then
  # Quoted for the shell: arguments like 'model.layers=[784, 1024, 10]' come back as they were.
  again=$(printf ' %q' "$@")
  echo "run-local: to continue this run: LOCKSTEP_RANKS=$np LOCKSTEP_RUN_DIR=$(printf '%q' "$run_dir") jobs/run-local.sh${again} --resume auto"
fi
exit "$rc"
