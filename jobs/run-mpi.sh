#!/usr/bin/env bash
# jobs/run-mpi.sh -- runs lockstep under mpirun on this machine: one rank per GPU when it has
# NVIDIA GPUs, else one rank per core; ranks are bound to cores when they fit. Everything
# after the options goes to lockstep unchanged.
#   jobs/run-mpi.sh train --config jobs/configs/fashion_mnist_mlp.toml --run-dir runs/mine
#   jobs/run-mpi.sh -n 4 train --config my.toml --run-dir runs/four --resume auto
#   jobs/run-mpi.sh --dry-run eval --checkpoint runs/mine/checkpoints/best.h5   # print, do not run
# Ranks: -n N, else LOCKSTEP_RANKS, else the GPUs (`nvidia-smi -L`, no more than
# CUDA_VISIBLE_DEVICES lists when it is set), else the physical cores. Binding: --bind-to core
# when the ranks fit on the cores, --bind-to none and --oversubscribe when they do not.
# GPUs: each rank takes the GPU of its node-local rank itself; this script never sets
# CUDA_VISIBLE_DEVICES (docs/running.md).
# Environment: LOCKSTEP (the binary, default build/lockstep), LOCKSTEP_RANKS, CUDA_VISIBLE_DEVICES
# (only read, to count the GPUs), OPENBLAS_NUM_THREADS (BLAS threads per rank, default 1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/mpi-flags.sh"

dry_run=0 np=${LOCKSTEP_RANKS:-}
while [ $# -gt 0 ]; do
  case $1 in
    -n) [ $# -ge 2 ] || { echo "run-mpi: -n needs a number" >&2; exit 2; }; np=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: jobs/run-mpi.sh [-n RANKS] [--dry-run] SUBCOMMAND [ARGS...]   (e.g. train --config FILE)" >&2; exit 2; }
bin=${LOCKSTEP:-$root/build/lockstep}
[ -x "$bin" ] || [ "$dry_run" = 1 ] || { echo "run-mpi: $bin not found; build it with scripts/build.sh" >&2; exit 2; }

cores=$(lockstep_cores)
gpus=$(lockstep_gpus)
if [ -z "$np" ]; then
  if [ "$gpus" -gt 0 ]; then np=$gpus why="one per GPU"; else np=$cores why="one per core"; fi
else
  why="as asked"
fi
[[ "$np" =~ ^[1-9][0-9]*$ ]] || { echo "run-mpi: the rank count must be a positive integer, not '$np'" >&2; exit 2; }
if [ "$gpus" -gt 0 ] && [ "$np" -gt "$gpus" ]; then
  echo "run-mpi: $np ranks but $gpus GPU(s): ranks would share a GPU, which lockstep refuses unless run.allow_shared_gpu = true (or run.device = \"cpu\")" >&2
fi

lockstep_mpi_flags "$np"
if mpirun --version 2>/dev/null | grep -q "Open MPI"; then
  if [ "$np" -le "$cores" ]; then MPI_FLAGS+=(--bind-to core); else MPI_FLAGS+=(--bind-to none); fi
fi
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
echo "run-mpi: $np rank(s), $why ($gpus GPU(s), $cores core(s))" >&2
if [ "$gpus" -gt 0 ]; then
  echo "run-mpi: the ranks use the GPUs only with run.device = \"cuda\" (or \"auto\") in the config or --set" >&2
fi
echo "+ mpirun -np $np ${MPI_FLAGS[*]} $bin $*"
[ "$dry_run" = 0 ] || exit 0
rc=0
lockstep_mpirun -np "$np" "${MPI_FLAGS[@]}" "$bin" "$@" || rc=$?
exit "$rc"
