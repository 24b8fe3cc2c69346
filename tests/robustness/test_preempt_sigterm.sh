#!/usr/bin/env bash
# Preemption by SIGTERM (tests/cli/test_preempt.sh covers SIGUSR1 to mpirun, which forwards it):
#  a. SIGTERM to every rank's process, as Slurm does on preemption, time limit or scancel;
#  b. SIGTERM to rank 1 only: the flag is reduced, so every rank stops at the same step (and the
#     message names the signal, which rank 0 did not receive itself).
# Each stops with a checkpoint at a step boundary and exit code 75, and rerunning the same command
# with --resume auto ends with bitwise the weights of an uninterrupted run. (SIGTERM to mpirun
# itself is Open MPI's business: it sends SIGCONT, waits odls_base_sigkill_timeout (1 s), sends
# SIGTERM, waits again, then SIGKILL, and exits 1; tests/robustness/README.md has the figures.)
source "$(dirname "$0")/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
# 3 epochs of 938 steps: the signal, sent once the step-100 checkpoint exists, lands long before
# the end whatever the machine's speed (both scale with it).
common=(--config "$cfg" --set train.epochs=3 --set train.batch_size=64 --set 'model.layers=[784, 256, 10]'
        --set train.progress=false --set checkpoint.every_epochs=0 --set checkpoint.every_steps=100
        --set data.val_size=0 --set data.test_images= --set data.test_labels=)
total=$((3 * 938))
[ "$OPEN_MPI" = 1 ] || { echo "skipped: rank pids are found through Open MPI's environment"; exit 0; }

run 2 300 train "${common[@]}" --run-dir "$WORK/whole"
expect_rc 0 "uninterrupted run"
whole=$(checksum_of "$WORK/whole/checkpoints")

report=""
for how in all-ranks rank-1; do
  dir="$WORK/$how"
  # shellcheck disable=SC2086
  "$MPIEXEC" -np 2 $MPIEXEC_FLAGS "$LOCKSTEP" train "${common[@]}" --run-dir "$dir" >"$WORK/cut.out" 2>&1 &
  job=$!
  # Signal once the step loop runs: the step-100 checkpoint has been renamed into place.
  for _ in $(seq 1 1200); do [ -f "$dir/checkpoints/step-000000100.h5" ] && break; sleep 0.05; done
  [ -f "$dir/checkpoints/step-000000100.h5" ] || fail "$how: no step-100 checkpoint after 60 s: $(cat "$WORK/cut.out")"
  mapfile -t pids < <(rank_pids "$job")
  [ "${#pids[@]}" -eq 2 ] || fail "expected 2 rank processes, found ${#pids[@]}: $(cat "$WORK/cut.out")"
  case "$how" in
    all-ranks) kill -TERM "${pids[@]}" ;;
    rank-1) kill -TERM "${pids[1]}" ;;
  esac
  for _ in $(seq 1 1200); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$job" 2>/dev/null && { kill -KILL "$job"; fail "$how: the job did not stop after SIGTERM"; }
  set +e; wait "$job"; rc=$?; set -e
  out=$(cat "$WORK/cut.out")
  [ "$rc" -eq 75 ] || fail "$how: expected exit code 75 after SIGTERM, got $rc: $out"
  grep -q "stopped on request (signal 15)" <<<"$out" || fail "$how: no stop message: $out"
  step=$(grep -o "at step [0-9]*" <<<"$out" | grep -o "[0-9]*")
  [ "$step" -lt "$total" ] || fail "$how: the signal arrived after training ended (step $step); make the run longer"
  [ "$(cat "$dir/checkpoints/latest")" = "$(printf 'step-%09d.h5' "$step")" ] || fail "$how: no checkpoint at step $step"
  n=$(grep -c "checkpoint: .*(stop requested)" <<<"$out" || true)
  [ "$n" -eq 1 ] || fail "$how: expected one stop checkpoint, found $n: $out"

  run 2 300 train "${common[@]}" --run-dir "$dir" --resume auto
  expect_rc 0 "$how: resume"
  expect_out "resuming from $dir/checkpoints/$(printf 'step-%09d.h5' "$step")"
  resumed=$(checksum_of "$dir/checkpoints")
  [ "$resumed" = "$whole" ] || fail "$how: resumed run ends with $resumed, the uninterrupted run with $whole"
  report+="$how: stopped at step $step, exit $rc; "
done
echo "ok ($report)"
