#!/usr/bin/env bash
# Disk full while a checkpoint is written: exit code 4 on every rank, one message naming the file
# and the cause, the previous checkpoint intact (same bytes, still `latest`, loads), no temporary
# left, and the run resumes from it once there is room. (And `lockstep convert` into a full disk
# leaves nothing behind.)
#  1. A 2 MiB tmpfs as checkpoint.dir, 2 ranks: the first checkpoint (1.2 MB) fits, the second
#     fills the file system (ENOSPC). Needs mount(2); where it is not permitted (an unprivileged
#     container) this part is skipped and says so.
#  2. Everywhere: RLIMIT_FSIZE (ulimit -f) below the checkpoint size, SIGXFSZ ignored, one rank
#     without mpirun (Open MPI resets ignored signals in the processes it starts): write(2)
#     fails with EFBIG at the limit. This is a write failure of the same code path (HDF5 write,
#     close, fsync, rename), not literally a full disk.
source "$(dirname "$0")/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
common=(--config "$cfg" --set 'model.layers=[784, 128, 10]' --set train.max_steps=100 --set train.progress=false
        --set checkpoint.every_steps=20 --set checkpoint.every_epochs=0 --set data.val_size=0
        --set data.test_images= --set data.test_labels=)

# check_failed_save CKDIR PREVIOUS_STEP DIGEST: the state a failed save must leave behind
# (reads ERR first, then runs inspect, which replaces OUT and ERR).
check_failed_save() {
  local ck=$1 step=$2 digest=$3 name
  name=$(printf 'step-%09d.h5' "$step")
  expect_one_error "could not be written"
  expect_err "the previous checkpoint is untouched"
  [ "$(cat "$ck/latest")" = "$name" ] || fail "latest moved to $(cat "$ck/latest")"
  [ "$(sha256sum <"$ck/$name")" = "$digest" ] || fail "the previous checkpoint $name changed"
  if ls -a "$ck" | grep -q "tmp"; then fail "temporaries left: $(ls -a "$ck")"; fi
  run 1 30 inspect "$ck"
  expect_rc 0 "the previous checkpoint after the failed save"
  expect_out "global step $step"
}

mounted=0
mkdir -p "$WORK/small"
if mount -t tmpfs -o size=2m tmpfs "$WORK/small" 2>/dev/null; then
  mounted=1
  trap 'umount "$WORK/small" 2>/dev/null; rm -rf "$WORK"' EXIT
  ck="$WORK/small/ck"
  run_ranks 2 120 train "${common[@]}" --run-dir "$WORK/run" --set checkpoint.dir="$ck"
  [ "$RC" -ne 124 ] && [ "$RC" -ne 137 ] || fail "hang after the disk filled up: $ERR"
  expect_every_rank 2 4
  expect_err "No space left on device"
  expect_err "checkpoint $ck/step-000000040.h5 could not be written"
  digest=$(sha256sum <"$ck/step-000000020.h5")
  check_failed_save "$ck" 20 "$digest"
  # The exit code as mpirun reports it in the ordinary mode (every rank exits 4, no abort).
  umount "$WORK/small" && mount -t tmpfs -o size=2m tmpfs "$WORK/small"
  run 2 120 train "${common[@]}" --run-dir "$WORK/run2" --set checkpoint.dir="$ck"
  expect_rc 4 "mpirun's status after a failed checkpoint"
  # With room again (a larger file system), the run resumes from the intact checkpoint.
  cp -a "$ck" "$WORK/ck-saved" && umount "$WORK/small" && mount -t tmpfs -o size=16m tmpfs "$WORK/small"
  cp -a "$WORK/ck-saved" "$ck"
  run 2 120 train "${common[@]}" --run-dir "$WORK/run2" --set checkpoint.dir="$ck" --resume auto
  expect_rc 0 "resume once there is room"
  expect_out "resuming from $ck/step-000000020.h5"
  expect_out "done: 100 steps"
  # `lockstep convert` into a full file system: one message, nothing left behind, no HDF5 noise.
  umount "$WORK/small" && mount -t tmpfs -o size=2m tmpfs "$WORK/small"
  run 1 60 convert --images "$FMNIST/t10k-images-idx3-ubyte.gz" --labels "$FMNIST/t10k-labels-idx1-ubyte.gz" \
    --out "$WORK/small/test.h5"
  [ "$RC" -ne 0 ] && [ "$RC" -lt 124 ] || fail "convert into a full file system: exit code $RC"
  expect_one_error "No space left on device"
  grep -q "infinite loop" <<<"$ERR" && fail "HDF5's exit-time cleanup looped: $ERR"
  [ -z "$(ls -A "$WORK/small")" ] || fail "convert left files behind: $(ls -A "$WORK/small")"
  umount "$WORK/small"
  trap 'rm -rf "$WORK"' EXIT
fi

# RLIMIT_FSIZE: the first run saves step 20 without a limit and is stopped by max_steps; the
# resumed run gets a file-size limit of 8 MiB for its next save (the checkpoint of this model is
# 9.8 MB; a smaller limit would already stop MPI's own start-up, whose PMIx store is a file).
# HDF5 then cannot even close the file: libhdf5 1.10 crashed at exit on it (exit 139, not 4).
big=("${common[@]}" --set 'model.layers=[784, 1024, 10]')
ck="$WORK/fsize/checkpoints"
run 1 120 train "${big[@]}" --run-dir "$WORK/fsize" --set train.max_steps=20
expect_rc 0 "the run before the limit"
digest=$(sha256sum <"$ck/step-000000020.h5")
set +e
(trap '' XFSZ; ulimit -f 8192; exec timeout -k 5 120 "$LOCKSTEP" train "${big[@]}" --run-dir "$WORK/fsize" --resume auto) \
  >"$WORK/out" 2>"$WORK/err"
RC=$?
set -e
OUT=$(cat "$WORK/out")
ERR=$(cat "$WORK/err")
expect_rc 4 "a checkpoint write beyond RLIMIT_FSIZE"
expect_err "File too large"
check_failed_save "$ck" 20 "$digest"
echo "ok (tmpfs: $([ $mounted = 1 ] && echo run || echo skipped, mount not permitted); RLIMIT_FSIZE: run)"
