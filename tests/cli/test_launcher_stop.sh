#!/usr/bin/env bash
# The workstation launcher (jobs/run-mpi.sh, whose signal handling jobs/run-local.sh shares):
# Ctrl-C (SIGINT to the terminal's foreground process group) or SIGTERM to the launcher reach the
# ranks as SIGUSR1, so the job saves a checkpoint at the next step boundary and exits 75 instead
# of being killed by mpirun (exit 1); the same command with --resume auto then carries on.
source "$(dirname "$0")/lib.sh"
launcher=$SOURCE_DIR/jobs/run-mpi.sh
export LOCKSTEP
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
# 2 epochs of 860 steps: the signal, sent once the step-100 checkpoint exists, lands well before
# the end whatever the machine's speed.
args=(train --config "$cfg" --set train.epochs=2 --set train.batch_size=64 --set 'model.layers=[784, 256, 10]'
      --set train.progress=false --set checkpoint.every_epochs=0 --set checkpoint.every_steps=100
      --run-dir "$WORK/run" --resume auto)
total=$((2 * 860))

# start_launcher: the launcher in a session of its own, as a shell runs a foreground job (and
# with SIGINT not ignored, as it is for a background job of a script); sets PID.
start_launcher() {
  setsid env --default-signal=INT timeout -k 30 120 "$launcher" -n 2 "${args[@]}" >"$WORK/out" 2>&1 &
  PID=$!
}
# stop_after STEP SIGNAL TARGET: waits for the checkpoint of STEP, then sends SIGNAL to TARGET;
# sets RC and STOP (the step the job stopped at).
stop_after() {
  local file
  file=$WORK/run/checkpoints/$(printf 'step-%09d.h5' "$1")
  for _ in $(seq 1 1200); do [ -f "$file" ] && break; sleep 0.05; done
  [ -f "$file" ] || fail "no step-$1 checkpoint after 60 s: $(cat "$WORK/out")"
  kill "-$2" -- "$3"
  set +e; wait "$PID"; RC=$?; set -e
  [ "$RC" -eq 75 ] || fail "SIGNAL $2 to $3: expected exit code 75, got $RC: $(cat "$WORK/out")"
  grep -q "^launcher: stopping at the next step boundary" "$WORK/out" || fail "no launcher line: $(cat "$WORK/out")"
  STOP=$(grep -o "stopped on request (signal 10) at step [0-9]*" "$WORK/out" | grep -o "[0-9]*$")
  if [ -z "$STOP" ] || [ "$STOP" -ge "$total" ]; then fail "no stop before the end: $(cat "$WORK/out")"; fi
  [ -f "$WORK/run/checkpoints/$(printf 'step-%09d.h5' "$STOP")" ] || fail "no checkpoint at the stop step $STOP"
}

# Ctrl-C: SIGINT to the whole foreground group. mpirun is in a group of its own and does not see it.
start_launcher
stop_after 100 INT "-$PID"
first=$STOP
echo "ok: Ctrl-C stopped the job at step $first with a checkpoint, exit 75"

# SIGTERM to the launcher alone, in the resumed run.
start_launcher
stop_after $(((first / 100 + 1) * 100)) TERM "$PID"
grep -q "resuming from .*step-$(printf '%09d' "$first").h5" "$WORK/out" || fail "did not resume at $first: $(cat "$WORK/out")"
[ "$STOP" -gt "$first" ] || fail "the second stop ($STOP) is not after the first ($first)"
echo "ok: SIGTERM stopped the resumed job at step $STOP, exit 75"

# (timeout --foreground below: a plain timeout puts itself and the launcher in a process group
# of their own, out of reach of the Ctrl-C.)
# Ctrl-C to a launcher whose output goes through `| tee -i` (documented: a plain tee dies of the
# Ctrl-C, and mpirun aborts the job once its output pipe is closed). The launcher's own message
# must not be what ends it (it wrote to stderr before passing the stop on, and a broken pipe
# there killed it, leaving the job to train on unwatched).
last=$STOP
setsid env --default-signal=INT bash -c '(timeout --foreground -k 30 120 "$0" -n 2 "${@}"; echo "rc $?" >"'"$WORK/rc"'") 2>&1 | tee -i "'"$WORK/out"'" >/dev/null' \
  "$launcher" "${args[@]}" &
PID=$!
file=$WORK/run/checkpoints/$(printf 'step-%09d.h5' $(((last / 100 + 1) * 100)))
for _ in $(seq 1 1200); do [ -f "$file" ] && break; sleep 0.05; done
[ -f "$file" ] || fail "no checkpoint after step $last within 60 s: $(cat "$WORK/out")"
kill -INT -- "-$PID"
for _ in $(seq 1 600); do [ -s "$WORK/rc" ] && break; sleep 0.05; done
[ "$(cat "$WORK/rc" 2>/dev/null)" = "rc 75" ] || fail "Ctrl-C through tee: $(cat "$WORK/rc" 2>/dev/null || echo 'no exit status within 30 s')"
wait "$PID" 2>/dev/null || true
echo "ok: Ctrl-C with the output through tee -i, exit 75"

# Ctrl-C right at the start: the moment mpirun exists, before its ranks are up (mpirun drops a
# signal then, and a rank that gets one before its handler is in dies): the launcher holds the
# request until the ranks can take it, and the job still stops with 75.
rm -f "$WORK/rc"
setsid env --default-signal=INT bash -c '(timeout --foreground -k 30 120 "$0" -n 2 "${@}"; echo "rc $?" >"'"$WORK/rc"'") >"'"$WORK/out"'" 2>&1' \
  "$launcher" "${args[@]}" &
PID=$!
for _ in $(seq 1 2000); do pgrep -f "^mpirun .*$WORK/run" >/dev/null && break; sleep 0.005; done
pgrep -f "^mpirun .*$WORK/run" >/dev/null || fail "mpirun did not start: $(cat "$WORK/out")"
kill -INT -- "-$PID"
wait "$PID" 2>/dev/null || true
[ "$(cat "$WORK/rc" 2>/dev/null)" = "rc 75" ] || fail "an early Ctrl-C: $(cat "$WORK/rc" 2>/dev/null || echo 'no status'): $(cat "$WORK/out")"
echo "ok: Ctrl-C at the start, exit 75"

set +e; timeout -k 30 120 "$launcher" -n 2 "${args[@]}" >"$WORK/out" 2>&1; RC=$?; set -e
[ "$RC" -eq 0 ] || fail "the last resume: exit code $RC: $(cat "$WORK/out")"
grep -q "^done: $total steps" "$WORK/out" || fail "the run did not finish: $(cat "$WORK/out")"
echo "ok: resumed to the end"
