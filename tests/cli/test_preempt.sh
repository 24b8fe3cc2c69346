#!/usr/bin/env bash
# Preemption: SIGUSR1 to a 2-rank job makes every rank save a checkpoint at the same step
# boundary and exit with code 75; running the same command with --resume auto finishes the run
# with bitwise the same final weights (checksum) as an uninterrupted run. The stopped run's output
# says it stopped (step, checkpoint, how to continue) and has no "done"/"final" line.
source "$(dirname "$0")/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
# Long enough (3 epochs of 860 steps) that the signal, sent once the step-200 checkpoint exists,
# lands well before the end whatever the machine's speed: both scale with it.
common=(--config "$cfg" --set train.epochs=3 --set train.batch_size=64 --set 'model.layers=[784, 256, 10]'
        --set train.progress=false --set checkpoint.every_epochs=0 --set checkpoint.every_steps=200)
total=$((3 * 860))

run 2 120 train "${common[@]}" --run-dir "$WORK/whole"
expect_rc 0
run 1 30 inspect "$WORK/whole/checkpoints"
whole=$(grep -o "checksum [0-9a-f]*" <<<"$OUT")

# shellcheck disable=SC2086
"$MPIEXEC" -np 2 $MPIEXEC_FLAGS "$LOCKSTEP" train "${common[@]}" --run-dir "$WORK/cut" >"$WORK/cut.out" 2>&1 &
pid=$!
# Signal once training is under way: the step-200 checkpoint has been renamed into place.
for _ in $(seq 1 1200); do [ -f "$WORK/cut/checkpoints/step-000000200.h5" ] && break; sleep 0.05; done
[ -f "$WORK/cut/checkpoints/step-000000200.h5" ] || fail "no step-200 checkpoint after 60 s: $(cat "$WORK/cut.out")"
kill -USR1 "$pid"
set +e; wait "$pid"; rc=$?; set -e
[ "$rc" -eq 75 ] || fail "expected exit code 75 after SIGUSR1, got $rc: $(cat "$WORK/cut.out")"
grep -q "stopped on request (signal 10)" "$WORK/cut.out" || fail "no stop message: $(cat "$WORK/cut.out")"
step=$(grep -o "at step [0-9]*" "$WORK/cut.out" | grep -o "[0-9]*")
[ "$step" -lt "$total" ] || fail "the signal arrived after training ended (step $step); make the run longer"
[ -f "$WORK/cut/checkpoints/$(printf 'step-%09d.h5' "$step")" ] || fail "no checkpoint at the stop step $step"
# A stop is not a completion: the stop line names the step, the checkpoint and how to continue, and
# no "done" or "final" line reads as if the run had finished.
grep -qF "stopped on request (signal 10) at step $step of $total; checkpoint $WORK/cut/checkpoints/$(printf 'step-%09d.h5' "$step") saved; run the same command with --resume auto to continue" \
  "$WORK/cut.out" || fail "the stop line lacks the step, the checkpoint or how to continue: $(cat "$WORK/cut.out")"
if grep -qE "^done:|final test accuracy" "$WORK/cut.out"; then fail "a stopped run printed a completion line: $(cat "$WORK/cut.out")"; fi

run 2 120 train "${common[@]}" --run-dir "$WORK/cut" --resume auto
expect_rc 0
expect_out "resuming from"
run 1 30 inspect "$WORK/cut/checkpoints"
resumed=$(grep -o "checksum [0-9a-f]*" <<<"$OUT")
[ "$resumed" = "$whole" ] || fail "resumed run ends with $resumed, the uninterrupted run with $whole"
echo "ok (stopped at step $step)"
