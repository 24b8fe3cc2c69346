#!/usr/bin/env bash
# A rank dies: SIGKILL to one rank's process (not to mpirun) in the middle of a 2-rank run, once
# as rank 1 (a peer blocked in the next allreduce) and once as rank 0 (the checkpoint writer,
# maybe inside a write). The rest of the job must end within a bounded time (measured about
# 2 s: mpirun sees the death and sends the other rank SIGCONT, SIGTERM 1 s later, SIGKILL 1 s
# after that; tests/robustness/README.md), no rank process may outlive the job, the
# latest checkpoint must load, and rerunning with --resume auto must end with bitwise the weights
# of an uninterrupted run: nothing is lost but the steps since the last checkpoint.
source "$(dirname "$0")/lib.sh"
BOUND=${LOCKSTEP_KILL_BOUND:-30}
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
common=(--config "$cfg" --set 'model.layers=[784, 512, 10]' --set train.max_steps=2000 --set train.progress=false
        --set checkpoint.every_steps=20 --set checkpoint.keep=2 --set checkpoint.every_epochs=0
        --set data.val_size=0 --set data.test_images= --set data.test_labels=)
[ "$OPEN_MPI" = 1 ] || { echo "skipped: rank pids are found through Open MPI's environment"; exit 0; }

run 2 300 train "${common[@]}" --run-dir "$WORK/whole"
expect_rc 0 "uninterrupted run"
whole=$(checksum_of "$WORK/whole/checkpoints")

report=""
for victim_rank in 1 0; do
  dir="$WORK/cut$victim_rank"
  # shellcheck disable=SC2086
  "$MPIEXEC" -np 2 $MPIEXEC_FLAGS "$LOCKSTEP" train "${common[@]}" --run-dir "$dir" >"$WORK/cut.out" 2>&1 &
  job=$!
  wait_for "$dir/checkpoints/latest" 120
  sleep 0.3
  mapfile -t pids < <(rank_pids "$job")
  [ "${#pids[@]}" -eq 2 ] || fail "expected 2 rank processes under mpirun, found ${#pids[@]}: $(cat "$WORK/cut.out")"
  alive "${pids[$victim_rank]}" || fail "rank $victim_rank ended before the kill; make the run longer"
  kill -KILL "${pids[$victim_rank]}"
  t0=$(date +%s%N)
  # A hang guard, not a speed test: the job must end by itself.
  for _ in $(seq 1 $((BOUND * 10))); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$job" 2>/dev/null; then
    kill -KILL "$job" "${pids[@]}" 2>/dev/null || true
    fail "the job still runs ${BOUND} s after rank $victim_rank was killed: $(cat "$WORK/cut.out")"
  fi
  set +e; wait "$job"; rc=$?; set -e
  took=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  [ "$rc" -ne 0 ] || fail "the job exited 0 although rank $victim_rank was killed"
  for p in "${pids[@]}"; do
    ! alive "$p" || fail "rank process $p outlived the job"
  done
  grep -q "done: 2000 steps" "$WORK/cut.out" && fail "training finished before the kill; make the run longer"

  # The latest checkpoint is intact, and the next run continues from it.
  run 1 30 inspect "$dir/checkpoints"
  expect_rc 0 "the latest checkpoint after rank $victim_rank was killed"
  at=$(grep -o "global step [0-9]*" <<<"$OUT" | grep -o "[0-9]*$")
  run 2 300 train "${common[@]}" --run-dir "$dir" --resume auto
  expect_rc 0 "resume after rank $victim_rank was killed"
  expect_out "resuming from $dir/checkpoints/$(printf 'step-%09d.h5' "$at")"
  expect_out "done: 2000 steps"
  resumed=$(checksum_of "$dir/checkpoints")
  [ "$resumed" = "$whole" ] || fail "resumed after the kill: $resumed, uninterrupted: $whole"
  ls "$dir/checkpoints" | grep -q "\.tmp" && fail "temporaries left after the resumed run: $(ls "$dir/checkpoints")"
  report+="rank $victim_rank killed at step ~$at: job ended in $took s (exit $rc); "
done
echo "ok ($report)"
