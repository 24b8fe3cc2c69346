#!/usr/bin/env bash
# A stop signal that arrives while `lockstep train` is still setting up (loading the data, before
# the first step) is honoured, not fatal: the run trains one step, saves a checkpoint and exits
# with 75. The process is frozen (SIGSTOP) the moment its SIGUSR1 handler shows up in
# /proc/PID/status and the signal is sent only if the run has not printed its banner, which
# comes after the data is loaded; so the signal provably lands during setup.
source "$(dirname "$0")/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"

# One process without mpirun, so that its output file holds exactly what it has written.
"$LOCKSTEP" train --config "$cfg" --set train.progress=false --set 'model.layers=[784, 32, 10]' \
  --run-dir "$WORK/run" >"$WORK/run.out" 2>&1 &
pid=$!
trap 'kill -CONT "$pid" 2>/dev/null || true; kill -KILL "$pid" 2>/dev/null || true; rm -rf "$WORK"' EXIT

bin=$(readlink -f "$LOCKSTEP")
# usr1_caught: the process is lockstep (past the exec of the forked shell, whose handlers do not
# count) and has a handler for SIGUSR1 (bit 9 of SigCgt). Bash builtins but one readlink, so
# that the poll is fast next to the data loading it has to catch.
usr1_caught() {
  local key mask
  [ "$(readlink "/proc/$pid/exe")" = "$bin" ] || return 1
  while read -r key mask; do
    [ "$key" = SigCgt: ] && { (( 16#$mask & 0x200 )); return; }
  done <"/proc/$pid/status"
  return 1
}
limit=$((SECONDS + 120))   # a hang guard only
until usr1_caught 2>/dev/null; do
  [ -e "/proc/$pid" ] || fail "lockstep ended before installing its SIGUSR1 handler: $(cat "$WORK/run.out")"
  [ "$SECONDS" -lt "$limit" ] || fail "no SIGUSR1 handler after 120 s"
done
kill -STOP "$pid"
usr1_caught || fail "no SIGUSR1 handler after the poll: $(cat "$WORK/run.out")"
if grep -q "run directory" "$WORK/run.out"; then
  fail "the SIGUSR1 handler appeared only once setup was done: $(cat "$WORK/run.out")"
fi
kill -USR1 "$pid"
kill -CONT "$pid"
set +e; wait "$pid"; rc=$?; set -e
[ "$rc" -eq 75 ] || fail "expected exit code 75 after SIGUSR1 during setup, got $rc: $(cat "$WORK/run.out")"
grep -q "stopped on request (signal 10) at step 1 " "$WORK/run.out" || fail "not stopped at step 1: $(cat "$WORK/run.out")"
[ -f "$WORK/run/checkpoints/step-000000001.h5" ] || fail "no checkpoint at step 1"
echo "ok"
