#!/usr/bin/env bash
# Strong scaling (fixed global batch) and weak scaling (fixed per-rank batch) of the training
# step over 1..N ranks for the small (784-256-128-10) and large (784-4096-4096-4096-10) MLPs,
# each point one bench_throughput run (Fashion-MNIST, Adam, one BLAS thread per rank).
# Writes bench/results/scaling.csv and the plots (bench/scaling/plot.py). N defaults to the
# cores; more ranks run too but are marked oversubscribed and kept out of efficiency claims.
#   bench/scaling/run.sh                    # 1..cores ranks
#   MAX_RANKS=3 bench/scaling/run.sh        # adds an oversubscribed point
# Environment: LOCKSTEP_BUILD (default build), MAX_RANKS, CSV, MODELS ("small large"),
#   STRONG_BATCH_SMALL/LARGE, WEAK_BATCH_SMALL/LARGE, STEPS_SMALL/LARGE, REPEATS, LAUNCH
#   (a launcher taking the rank count as its last word, e.g. "srun --mpi=pmix -n"; default mpirun),
#   BENCH_NICE (e.g. -20 on a shared machine; bench/common/bench_env.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
build=${LOCKSTEP_BUILD:-build}
max_ranks=${MAX_RANKS:-$(nproc)}
csv=${CSV:-bench/results/scaling.csv}
models=${MODELS:-small large}
repeats=${REPEATS:-3}
source scripts/mpi-flags.sh
source bench/common/bench_env.sh
bench_priority
[ -x "$build/bench/bench_throughput" ] || { echo "run.sh: build first ($build/bench/bench_throughput missing)" >&2; exit 1; }
mkdir -p "$(dirname "$csv")"
rm -f "$csv"

declare -A layers=([small]=784,256,128,10 [large]=784,4096,4096,4096,10)
declare -A strong_batch=([small]=${STRONG_BATCH_SMALL:-256} [large]=${STRONG_BATCH_LARGE:-256})
declare -A weak_batch=([small]=${WEAK_BATCH_SMALL:-128} [large]=${WEAK_BATCH_LARGE:-128})
declare -A steps=([small]=${STEPS_SMALL:-200} [large]=${STEPS_LARGE:-8})

launch() {  # launch NP CMD...
  local np=$1
  shift
  if [ -n "${LAUNCH:-}" ]; then
    # shellcheck disable=SC2086
    $LAUNCH "$np" "$@"
  else
    lockstep_mpi_flags "$np"
    mpirun -np "$np" "${MPI_FLAGS[@]}" "$@"
  fi
}

export OPENBLAS_NUM_THREADS=1
echo "== scaling: 1..$max_ranks ranks on $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg); CSV $csv"
for model in $models; do
  for mode in strong weak; do
    for ((np = 1; np <= max_ranks; ++np)); do
      if [ "$mode" = strong ]; then batch=${strong_batch[$model]}; else batch=$((weak_batch[$model] * np)); fi
      launch "$np" "$build/bench/bench_throughput" --data fmnist --layers "${layers[$model]}" --batch "$batch" \
        --optimizer adam --steps "${steps[$model]}" --warmup-steps 2 --repeats "$repeats" --sgemm-seconds 0.3 \
        --label "$mode-$model" --csv "$csv" | grep -v '^RESULT' 
    done
  done
done
/usr/bin/python3 bench/scaling/plot.py "$csv" --out "$(dirname "$csv")"
