#!/usr/bin/env bash
# Runs the CPU benchmark suite in order and leaves its CSVs and plots in bench/results/:
# throughput (throughput.csv), allreduce (allreduce.csv), scaling (scaling.csv + PNGs), the
# scaling model (scaling_model.csv + PNG, validated against the scaling points), and the peer
# comparison (peers*.csv). About 20-30 minutes on 2 cores. Figures are only meaningful on an
# otherwise idle machine: each benchmark prints the load average and the CPU share it got.
#   LOCKSTEP_BUILD=build-bench BENCH_NICE=-20 bench/run_all.sh   # BENCH_NICE: see bench/common/bench_env.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${LOCKSTEP_BUILD:-build}
export LOCKSTEP_BUILD=$build
out=bench/results
source scripts/mpi-flags.sh
source bench/common/bench_env.sh
bench_priority
np=$(nproc)
[ "$np" -gt 2 ] && np=2

run() {  # run NP ARGS...: one bench_throughput run appended to throughput.csv
  local n=$1
  shift
  lockstep_mpi_flags "$n"
  OPENBLAS_NUM_THREADS=1 mpirun -np "$n" "${MPI_FLAGS[@]}" "$build/bench/bench_throughput" --csv "$out/throughput.csv" "$@" |
    grep -v '^RESULT'
}

echo "== throughput ($(date -u +%FT%TZ), load $(cut -d' ' -f1 /proc/loadavg))"
rm -f "$out/throughput.csv"
small=(--layers 784,256,128,10 --data fmnist --steps 300 --warmup-steps 20)
large=(--layers 784,4096,4096,4096,10 --data fmnist --steps 8 --warmup-steps 2 --repeats 2)
run 1 "${small[@]}" --batch 128 --label small-1rank
run "$np" "${small[@]}" --batch 128 --label small-${np}rank
run 1 --layers 784,1024,1024,10 --data fmnist --steps 100 --warmup-steps 10 --batch 128 --label mid-1rank
run 1 "${large[@]}" --batch 128 --label large-1rank
run 1 "${large[@]}" --batch 512 --label large-1rank-b512
run "$np" "${large[@]}" --batch 128 --label large-${np}rank

echo "== allreduce"
rm -f "$out/allreduce.csv"
lockstep_mpi_flags "$np"
mpirun -np "$np" "${MPI_FLAGS[@]}" "$build/bench/bench_allreduce" --csv "$out/allreduce.csv"

echo "== scaling"
bench/scaling/run.sh
/usr/bin/python3 bench/scaling/model.py

echo "== peers"
bench/peers/compare.sh
