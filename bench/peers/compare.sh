#!/usr/bin/env bash
# Peer comparison: lockstep (bench_throughput, lockstep train) against PyTorch (torch_mlp.py) on
# the same MLP, global batch, optimizer (Adam) and Fashion-MNIST data, in one run. PyTorch gets
# its best configuration on this machine for each case (the candidates are tried and the best
# kept). Prints the table; writes bench/results/peers.csv (case, lockstep_samples_per_s,
# pytorch_samples_per_s, ratio), peers_configs.csv (which PyTorch setup won, all tried) and
# peers_time_to_accuracy.csv. Lockstep and PyTorch alternate ROUNDS times; the best round counts.
#   bench/peers/compare.sh                      # everything (about 5-10 minutes on 2 cores)
#   LOCKSTEP_BUILD=build-bench SKIP_TTA=1 bench/peers/compare.sh
# Environment: LOCKSTEP_BUILD (build dir, default build), STEPS, REPEATS, ROUNDS, SKIP_TTA, OUT,
#   BENCH_NICE (e.g. -20 on a shared machine; bench/common/bench_env.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
build=${LOCKSTEP_BUILD:-build}
py=/usr/bin/python3   # Debian's python3-torch lives here, not in a pyenv python
steps=${STEPS:-200}
repeats=${REPEATS:-3}
rounds=${ROUNDS:-2}
out=${OUT:-bench/results}
small=784,256,128,10
large=784,1024,1024,10
mkdir -p "$out"
source scripts/mpi-flags.sh
source bench/common/bench_env.sh
bench_priority
[ -x "$build/bench/bench_throughput" ] || { echo "compare.sh: build first ($build/bench/bench_throughput missing)" >&2; exit 1; }

json_field() { "$py" -c 'import json,sys; d=json.loads(sys.argv[1]); v=d.get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"; }
result_line() { grep '^RESULT ' | tail -1 | cut -d' ' -f2-; }
best() { "$py" -c 'import sys; print(max(float(v) for v in sys.argv[1:]))' "$@"; }

# lockstep_sps NP LAYERS [STEPS]: samples/s of bench_throughput on NP ranks, one BLAS thread each.
lockstep_sps() {
  local np=$1 layers=$2 n=${3:-$steps}
  lockstep_mpi_flags "$np"
  local r
  r=$(OPENBLAS_NUM_THREADS=1 mpirun -np "$np" "${MPI_FLAGS[@]}" "$build/bench/bench_throughput" --data fmnist \
        --layers "$layers" --batch 128 --optimizer adam --steps "$n" --warmup-steps 20 --repeats "$repeats" \
        --sgemm-seconds 0.2 --csv "" | result_line)
  json_field "$r" samples_per_s
}

# torch_sps LAYERS [STEPS] -- ARGS...: samples/s of torch_mlp.py with ARGS.
torch_sps() {
  local layers=$1 n=$2
  shift 2
  local r
  r=$("$py" bench/peers/torch_mlp.py --layers "$layers" --batch 128 --optimizer adam --steps "$n" --warmup-steps 20 \
        --repeats "$repeats" "$@" | result_line)
  json_field "$r" samples_per_s
}

# Each candidate PyTorch setup: "name|args".
one_thread=("1 thread, FTZ|--threads 1 --blas-threads 1 --ftz 1"
            "1 thread, no FTZ|--threads 1 --blas-threads 1 --ftz 0"
            "1 thread, FTZ, foreach Adam|--threads 1 --blas-threads 1 --ftz 1 --foreach 1")
two_core=("2 torch threads, 1 BLAS thread, FTZ|--threads 2 --blas-threads 1 --ftz 1"
          "1 torch thread, 2 BLAS threads, FTZ|--threads 1 --blas-threads 2 --ftz 1"
          "2 torch threads, 2 BLAS threads, FTZ|--threads 2 --blas-threads 2 --ftz 1"
          "2 torch threads, 2 BLAS threads, FTZ, foreach Adam|--threads 2 --blas-threads 2 --ftz 1 --foreach 1")
ddp=("DDP gloo, 2 ranks x 1 thread, FTZ|--ddp 2 --threads 1 --blas-threads 1 --ftz 1")

echo "case,lockstep_samples_per_s,pytorch_samples_per_s,ratio" > "$out/peers.csv"
echo "case,pytorch_config,pytorch_samples_per_s" > "$out/peers_configs.csv"

# run_case NAME NP LAYERS STEPS CANDIDATES...: alternates lockstep and every PyTorch candidate.
run_case() {
  local name=$1 np=$2 layers=$3 n=$4
  shift 4
  local cands=("$@") ls=() i
  declare -A tsps=()
  for ((round = 0; round < rounds; ++round)); do
    ls+=("$(lockstep_sps "$np" "$layers" "$n")")
    for i in "${!cands[@]}"; do
      local args=${cands[$i]#*|}
      # shellcheck disable=SC2086
      tsps[$i]="${tsps[$i]:-} $(torch_sps "$layers" "$n" $args)"
    done
  done
  local lbest tbest=0 tname=""
  lbest=$(best "${ls[@]}")
  for i in "${!cands[@]}"; do
    local v
    # shellcheck disable=SC2086
    v=$(best ${tsps[$i]})
    echo "$name,\"${cands[$i]%%|*}\",$v" >> "$out/peers_configs.csv"
    if "$py" -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$v" "$tbest"; then
      tbest=$v
      tname=${cands[$i]%%|*}
    fi
  done
  local ratio
  ratio=$("$py" -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.3f}")' "$lbest" "$tbest")
  printf '%s,%.1f,%.1f,%s\n' "$name" "$lbest" "$tbest" "$ratio" >> "$out/peers.csv"
  printf '%-44s lockstep %9.0f   PyTorch %9.0f  (%s)   ratio %s\n' "$name" "$lbest" "$tbest" "$tname" "$ratio"
}

echo "== peers: lockstep vs PyTorch $("$py" -c 'import torch; print(torch.__version__)'), Adam, global batch 128, Fashion-MNIST; $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
run_case "small 1 rank 1 thread" 1 "$small" "$steps" "${one_thread[@]}"
run_case "small 2 ranks vs PyTorch best 2-core" 2 "$small" "$steps" "${two_core[@]}"
run_case "small 2 ranks vs DDP-gloo 2 ranks" 2 "$small" "$steps" "${ddp[@]}"
run_case "large 784-1024-1024-10 1 rank 1 thread" 1 "$large" $((steps / 4)) "${one_thread[@]}"

if [ -z "${SKIP_TTA:-}" ]; then
  # Time to 0.88 test accuracy: lockstep's default config on 2 ranks (training seconds summed
  # over epochs from metrics.jsonl, evaluation excluded) vs PyTorch with one thread.
  run_dir=$(mktemp -d /tmp/lockstep-tta.XXXXXX)
  lockstep_mpi_flags 2
  OPENBLAS_NUM_THREADS=1 mpirun -np 2 "${MPI_FLAGS[@]}" "$build/lockstep" train --config jobs/configs/fashion_mnist_mlp.toml \
    --run-dir "$run_dir/run" --set train.progress=false > "$run_dir/log" 2>&1 || { cat "$run_dir/log"; exit 1; }
  l_tta=$("$py" - "$run_dir/run/metrics.jsonl" <<'EOF'
import json, sys
total = 0.0
for line in open(sys.argv[1]):
    d = json.loads(line)
    total += d["seconds"]
    if d.get("test_accuracy", 0.0) >= 0.88:
        print(f"{total:.3f} {d['epoch']}")
        break
else:
    print("nan never")
EOF
)
  t_res=$("$py" bench/peers/torch_mlp.py --mode accuracy --threads 1 --blas-threads 1 --ftz 1 | result_line)
  t_tta=$(json_field "$t_res" train_seconds_to_target)
  t_ep=$(json_field "$t_res" epochs)
  echo "case,lockstep_seconds,lockstep_epochs,pytorch_seconds,pytorch_epochs,speedup" > "$out/peers_time_to_accuracy.csv"
  echo "time to 0.88 test accuracy: 2 ranks vs PyTorch 1 thread,${l_tta% *},${l_tta#* },$t_tta,$t_ep,$("$py" -c 'import sys; print(f"{float(sys.argv[2]) / float(sys.argv[1]):.2f}")' "${l_tta% *}" "${t_tta:-nan}")" >> "$out/peers_time_to_accuracy.csv"
  printf 'time to 0.88 test accuracy: lockstep 2 ranks %s s (%s epochs), PyTorch 1 thread %s s (%s epochs)\n' \
    "${l_tta% *}" "${l_tta#* }" "$t_tta" "$t_ep"
  rm -rf "$run_dir"
fi
tta_note=" and $out/peers_time_to_accuracy.csv"
[ -n "${SKIP_TTA:-}" ] && tta_note=""
echo "wrote $out/peers.csv and $out/peers_configs.csv$tta_note"
