#!/usr/bin/env bash
# Preemption: SIGUSR1 to a 2-rank job makes every rank save a checkpoint at the same step
# boundary and exit with code 75; running the same command with --resume auto finishes the run
# with bitwise the same final weights (checksum) as an uninterrupted run.
source "$(dirname "$0")/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
# Long enough (3000 steps, several seconds even on an idle machine) that the signal, sent half a
# second after training starts, always arrives before the end.
common=(--config "$cfg" --set train.epochs=8 --set train.max_steps=3000 --set 'model.layers=[784, 128, 10]'
        --set train.progress=false --set checkpoint.every_epochs=0)

run 2 120 train "${common[@]}" --run-dir "$WORK/whole"
expect_rc 0
run 1 30 inspect "$WORK/whole/checkpoints"
whole=$(grep -o "checksum [0-9a-f]*" <<<"$OUT")

# shellcheck disable=SC2086
"$MPIEXEC" -np 2 $MPIEXEC_FLAGS "$LOCKSTEP" train "${common[@]}" --run-dir "$WORK/cut" >"$WORK/cut.out" 2>&1 &
pid=$!
# Signal once training is under way (the first epoch line is not needed; a few steps are).
for _ in $(seq 1 100); do grep -q "run directory" "$WORK/cut.out" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
kill -USR1 "$pid"
set +e; wait "$pid"; rc=$?; set -e
[ "$rc" -eq 75 ] || fail "expected exit code 75 after SIGUSR1, got $rc: $(cat "$WORK/cut.out")"
grep -q "stopped on request (signal 10)" "$WORK/cut.out" || fail "no stop message: $(cat "$WORK/cut.out")"
step=$(grep -o "at step [0-9]*" "$WORK/cut.out" | grep -o "[0-9]*")
[ "$step" -lt 3000 ] || fail "the signal arrived after training ended (step $step); make the run longer"
[ -f "$WORK/cut/checkpoints/$(printf 'step-%09d.h5' "$step")" ] || fail "no checkpoint at the stop step $step"

run 2 120 train "${common[@]}" --run-dir "$WORK/cut" --resume auto
expect_rc 0
expect_out "resuming from"
run 1 30 inspect "$WORK/cut/checkpoints"
resumed=$(grep -o "checksum [0-9a-f]*" <<<"$OUT")
[ "$resumed" = "$whole" ] || fail "resumed run ends with $resumed, the uninterrupted run with $whole"
echo "ok (stopped at step $step)"
