#!/usr/bin/env bash
# Large model to small model on Fashion-MNIST, data-parallel on RANKS ranks (docs/distillation.md).
# For each seed: trains a 784-1024-1024-10 teacher, distils it into a 784-32-10 student (teacher
# logits cached once; at the config's T = 1, alpha = 0.5 and at the classic T = 4, alpha = 0.9),
# trains the same student from scratch with the same budget; then a transfer
# experiment: a 784-256-128-5 model trained on classes 0-4, moved to classes 5-9 with only 1,000
# labelled samples (frozen body, full fine-tune, from scratch). Every model is then evaluated on
# one process with one BLAS thread (test accuracy, inference samples/s), and two tables of mean
# and spread over the seeds are printed and written to OUT/tables.md.
#   jobs/examples/big-to-small.sh                 # 2 ranks, seeds 1 2 3 (about 10 min on 2 cores)
#   jobs/examples/big-to-small.sh -s 5 -n 4       # 5 seeds, 4 ranks
#   jobs/examples/big-to-small.sh --quick         # a few epochs each, to try the pipeline (~2 min)
# Options: -n RANKS (2), -s SEEDS (3), -o OUT (runs/big-to-small-<time>), --quick,
# --infer-seconds S (3: how long each inference measurement runs).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

np=2 seeds=3 out="" quick=0 infer=3
while [ $# -gt 0 ]; do
  case "$1" in
    -n) np=$2; shift 2 ;;
    -s) seeds=$2; shift 2 ;;
    -o) out=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --infer-seconds) infer=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
    *) echo "big-to-small.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$seeds" =~ ^[1-9][0-9]*$ ]] || { echo "big-to-small.sh: -s needs a positive number of seeds" >&2; exit 2; }
out=${out:-runs/big-to-small-$(date +%Y%m%d-%H%M%S)}

scripts/install-deps.sh
scripts/build.sh
source scripts/mpi-flags.sh
lockstep_mpi_flags "$np"
export OPENBLAS_NUM_THREADS=1
L=build/lockstep
mkdir -p "$out"
: >"$out/commands.log"

# The epoch budgets; --quick shortens all of them alike.
teacher_epochs=() student_epochs=() base_epochs=() ft_epochs=()
if [ "$quick" = 1 ]; then
  teacher_epochs=(--set train.epochs=2) student_epochs=(--set train.epochs=3)
  base_epochs=(--set train.epochs=2) ft_epochs=(--set train.epochs=10)
fi

# step NAME CMD...: runs one command, logged to OUT/commands.log and NAME.log; stops on failure.
step() {
  local name=$1
  shift
  if [ "$1" = mpi ]; then  # log what mpi() runs
    echo "+ mpirun -np $np ${MPI_FLAGS[*]} $L ${*:2} --set train.progress=false" >>"$out/commands.log"
  else
    echo "+ $*" >>"$out/commands.log"
  fi
  printf '%-44s' "$name"
  local t0=$SECONDS rc=0
  mkdir -p "$(dirname "$out/$name")"
  "$@" >"$out/$name.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    echo "FAILED (exit $rc); the end of $out/$name.log:"
    tail -20 "$out/$name.log"
    exit 1
  fi
  echo "$(grep -o 'final test accuracy: [0-9.]*' "$out/$name.log" | tail -1) ($((SECONDS - t0)) s)"
}
mpi() { mpirun -np "$np" "${MPI_FLAGS[@]}" "$L" "$@" --set train.progress=false; }
latest() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }

start=$SECONDS
for seed in $(seq 1 "$seeds"); do
  d=$out/seed-$seed
  s=(--set run.seed="$seed")
  echo "== seed $seed"
  step "seed-$seed/teacher" mpi train --config jobs/configs/fashion_mnist_teacher.toml --run-dir "$d/teacher" "${s[@]}" \
    "${teacher_epochs[@]}"
  teacher=$d/teacher/checkpoints/best.h5
  step "seed-$seed/student-distilled" mpi distill --teacher "$teacher" --config jobs/configs/fashion_mnist_student.toml \
    --run-dir "$d/distilled" --resume auto --cache-teacher "${s[@]}" "${student_epochs[@]}"
  # The classic setting as well (T = 4, alpha = 0.9), from the same cached logits.
  step "seed-$seed/student-distilled-T4" mpi distill --teacher "$teacher" \
    --config jobs/configs/fashion_mnist_student.toml --run-dir "$d/distilled-T4" --resume auto \
    --set distill.cache="$d/distilled/teacher-logits.h5" --set distill.temperature=4 --set distill.alpha=0.9 \
    "${s[@]}" "${student_epochs[@]}"
  step "seed-$seed/student-scratch" mpi train --config jobs/configs/fashion_mnist_student.toml --run-dir "$d/scratch" \
    "${s[@]}" "${student_epochs[@]}"

  step "seed-$seed/transfer-base-0-4" mpi train --config jobs/configs/fashion_mnist_transfer_base.toml \
    --run-dir "$d/base" "${s[@]}" "${base_epochs[@]}"
  base=$d/base/checkpoints/best.h5
  ft=(--config jobs/configs/fashion_mnist_transfer_finetune.toml "${s[@]}" "${ft_epochs[@]}")
  step "seed-$seed/transfer-frozen-body" mpi train "${ft[@]}" --run-dir "$d/frozen" --set init.from="$base" \
    --set init.reset_head=true --set 'init.freeze=[0, 1]'
  step "seed-$seed/transfer-full-finetune" mpi train "${ft[@]}" --run-dir "$d/full" --set init.from="$base" \
    --set init.reset_head=true
  step "seed-$seed/transfer-scratch" mpi train "${ft[@]}" --run-dir "$d/ft-scratch"

  # One process, one BLAS thread: accuracy on the test set and inference throughput.
  echo "seed,experiment,model,checkpoint,params,checkpoint_bytes,test_accuracy,samples_per_s" >"$d/results.csv"
  measure() {  # EXPERIMENT MODEL CHECKPOINT
    local log="$d/eval-$2.log"
    echo "+ $L eval --checkpoint $3 --time-inference $infer" >>"$out/commands.log"
    "$L" eval --checkpoint "$3" --time-inference "$infer" >"$log" 2>&1
    local acc rate params bytes
    acc=$(awk '/^test/ {print $3}' "$log")
    rate=$(awk '/^inference:/ {print $2}' "$log")
    params=$("$L" inspect "$3" | awk '/total .* parameters/ {print $2}')
    bytes=$(stat -L -c %s "$3")
    echo "$seed,$1,$2,$3,$params,$bytes,$acc,$rate" >>"$d/results.csv"
  }
  measure distillation teacher "$teacher"
  measure distillation student-distilled "$(latest "$d/distilled")"
  measure distillation student-distilled-T4-a0.9 "$(latest "$d/distilled-T4")"
  measure distillation student-scratch "$(latest "$d/scratch")"
  measure transfer base-classes-0-4 "$base"
  measure transfer frozen-body "$(latest "$d/frozen")"
  measure transfer full-finetune "$(latest "$d/full")"
  measure transfer scratch "$(latest "$d/ft-scratch")"
done

{
  head -1 "$out/seed-1/results.csv"
  for seed in $(seq 1 "$seeds"); do tail -n +2 "$out/seed-$seed/results.csv"; done
} >"$out/results.csv"
python3 jobs/examples/summarize_big_to_small.py "$out/results.csv" | tee "$out/tables.md"
echo "total $((SECONDS - start)) s; results in $out (results.csv, tables.md, commands.log)"
