#!/usr/bin/env bash
# metrics.jsonl that cannot be written in the middle of a run (a full disk): every rank ends with
# exit code 4, as on a failed checkpoint, after the epoch's checkpoint is saved; one message names
# the file, the OS error and that checkpoint; metrics.jsonl keeps only whole lines; with room again
# `--resume auto` finishes with the weights of an uninterrupted run. (It used to end in MPI_ABORT,
# exit 1 on rank 0 with the other ranks killed, and the epoch's checkpoint was never saved.)
#  1. The run directory on a tmpfs left with room for the lock and config.toml only (checkpoints
#     elsewhere), 2 ranks: the first append fails with ENOSPC. Needs mount(2); where it is not
#     permitted this part is skipped and says so.
#  2. Everywhere: RLIMIT_FSIZE (ulimit -f), SIGXFSZ ignored, one rank without mpirun (Open MPI
#     resets ignored signals): a resumed run whose metrics.jsonl is already at the limit fails its
#     append with EFBIG while its checkpoint, a new and smaller file, is written.
source "$(dirname "$0")/lib.sh"
small_setup "$WORK/a.toml" --no-test
cat >>"$WORK/a.toml" <<EOT
[train]
epochs = 3
batch_size = 12
progress = false
EOT
train=(train --config "$WORK/a.toml")

# The uninterrupted run: 5 steps per epoch, 15 in all.
run 2 60 "${train[@]}" --run-dir "$WORK/ref"
expect_rc 0 "the uninterrupted run"
expect_out "done: 15 steps"
reference=$(checksum_of "$WORK/ref/checkpoints")

mounted=0
mkdir -p "$WORK/small"
if mount -t tmpfs -o size=256k tmpfs "$WORK/small" 2>/dev/null; then
  mounted=1
  trap 'umount "$WORK/small" 2>/dev/null; rm -rf "$WORK"' EXIT
  # Fill it, then give back two pages: the lock record and config.toml (each under 4 KiB) fit, the
  # first metrics line does not.
  dd if=/dev/zero of="$WORK/small/fill" bs=4096 >/dev/null 2>&1 || true
  truncate -s $(($(stat -c %s "$WORK/small/fill") - 8192)) "$WORK/small/fill"
  r=$WORK/small/r
  ck=$WORK/ck
  run_ranks 2 60 "${train[@]}" --run-dir "$r" --set checkpoint.dir="$ck"
  [ "$RC" -ne 124 ] && [ "$RC" -ne 137 ] || fail "hang after metrics.jsonl could not be written: $ERR"
  [ "$(stat -c %s "$r/config.toml")" -le 4096 ] || fail "config.toml is over a page: the tmpfs is sized wrongly"
  expect_every_rank 2 4
  expect_one_error "$r/metrics.jsonl: write failed (No space left on device) at the end of epoch 1 (step 5)"
  expect_err "checkpoint $ck/step-000000005.h5 holds this state"
  expect_err "--resume auto"
  [ "$(cat "$ck/latest")" = step-000000005.h5 ] || fail "latest is $(cat "$ck/latest"), not the epoch's checkpoint"
  [ -f "$r/metrics.jsonl" ] && [ ! -s "$r/metrics.jsonl" ] || fail "metrics.jsonl holds part of a line: $(ls -l "$r")"
  # mpirun's own status in the ordinary mode: 4, not an abort.
  rm -rf "$r" "$ck"
  run 2 60 "${train[@]}" --run-dir "$r" --set checkpoint.dir="$ck"
  expect_rc 4 "mpirun's status after a failed metrics write"
  grep -q "MPI_ABORT" <<<"$ERR" && fail "the job was aborted: $ERR"
  # Room again: the run continues from the epoch's checkpoint and ends as the uninterrupted one.
  rm "$WORK/small/fill"
  run 2 60 "${train[@]}" --run-dir "$r" --set checkpoint.dir="$ck" --resume auto
  expect_rc 0 "resume once there is room"
  expect_out "resuming from $ck/step-000000005.h5: epoch 2, step 5"
  expect_out "done: 15 steps"
  [ "$(wc -l <"$r/metrics.jsonl")" -eq 2 ] || fail "metrics.jsonl after the resume: $(cat "$r/metrics.jsonl")"
  [ "$(checksum_of "$ck")" = "$reference" ] || fail "the resumed run ends with other weights than the uninterrupted one"
  umount "$WORK/small"
  trap 'rm -rf "$WORK"' EXIT
fi

# RLIMIT_FSIZE: epoch 1 as usual; then metrics.jsonl is grown to the 8 MiB limit (a smaller one
# would stop MPI's own start-up, whose PMIx store is a file) and the resumed run's append fails.
f=$WORK/fsize
run 1 60 "${train[@]}" --run-dir "$f" --set train.epochs=1
expect_rc 0 "the first epoch"
# A well-formed line of an early step fills it to the limit (a start sets lines it cannot read
# aside, as left by a torn write, so zero padding would not do).
python3 - "$f/metrics.jsonl" <<'EOP'
import os, sys
path = sys.argv[1]
room = 8 * 1024 * 1024 - os.path.getsize(path)
head, tail = '{"step":0,"pad":"', '"}\n'
with open(path, "a") as f:
    f.write(head + "x" * (room - len(head) - len(tail)) + tail)
assert os.path.getsize(path) == 8 * 1024 * 1024
EOP
digest=$(sha256sum <"$f/metrics.jsonl")
set +e
(trap '' XFSZ; ulimit -f 8192; exec timeout -k 5 60 "$LOCKSTEP" "${train[@]}" --run-dir "$f" --resume auto) \
  >"$WORK/out" 2>"$WORK/err"
RC=$?
set -e
OUT=$(cat "$WORK/out")
ERR=$(cat "$WORK/err")
expect_rc 4 "a metrics.jsonl write beyond RLIMIT_FSIZE"
expect_one_error "$f/metrics.jsonl: write failed (File too large) at the end of epoch 2 (step 10)"
expect_err "checkpoint $f/checkpoints/step-000000010.h5 holds this state"
[ "$(cat "$f/checkpoints/latest")" = step-000000010.h5 ] || fail "latest is $(cat "$f/checkpoints/latest")"
[ "$(sha256sum <"$f/metrics.jsonl")" = "$digest" ] || fail "metrics.jsonl changed by the failed append"
run 1 30 inspect "$f/checkpoints/step-000000010.h5"
expect_rc 0 "the checkpoint saved after the failed append"
expect_out "global step 10"
echo "ok (tmpfs: $([ $mounted = 1 ] && echo run || echo skipped, mount not permitted); RLIMIT_FSIZE: run)"
