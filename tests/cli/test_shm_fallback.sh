#!/usr/bin/env bash
# The node-shared-memory gradient allreduce and its fallback, end to end on 2 ranks: a run
# through shared memory and one with run.shared_memory_allreduce = false end with bitwise the
# same weights (two terms add the same in either order); with a /dev/shm too small for the
# gradients (a private 2 MiB tmpfs in a mount namespace), every rank falls back to
# MPI_Allreduce, says why once, and ends with the same weights again.
source "$(dirname "$0")/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
# 814,090 parameters: 3.3 MB of gradients per rank, more than the small /dev/shm holds.
common=(--config "$cfg" --set train.max_steps=40 --set 'model.layers=[784, 1024, 10]' --set train.progress=false
        --set checkpoint.every_epochs=0 --set data.val_size=0 --set data.test_images= --set data.test_labels=)

run 2 120 train "${common[@]}" --run-dir "$WORK/shm"
expect_rc 0 "shared memory"
grep -q "gradient allreduce: MPI_Allreduce" <<<"$OUT" && fail "fell back to MPI with room in /dev/shm: $OUT"
run 1 30 inspect "$WORK/shm/checkpoints"
shm=$(grep -o "checksum [0-9a-f]*" <<<"$OUT")

run 2 120 train "${common[@]}" --run-dir "$WORK/mpi" --set run.shared_memory_allreduce=false
expect_rc 0 "MPI_Allreduce"
run 1 30 inspect "$WORK/mpi/checkpoints"
mpi=$(grep -o "checksum [0-9a-f]*" <<<"$OUT")
[ "$shm" = "$mpi" ] || fail "shared memory ends with $shm, MPI_Allreduce with $mpi"

# A full /dev/shm. Open MPI's own shared memory goes to /tmp meanwhile.
unshare -m true 2>/dev/null || { echo "cannot make a mount namespace here: fallback not tested"; exit 77; }
set +e
# shellcheck disable=SC2086
unshare -m bash -c 'mount -t tmpfs -o size=2M tmpfs /dev/shm || exit 77
  exec timeout -k 5 120 "$@"' _ "$MPIEXEC" -np 2 $MPIEXEC_FLAGS --mca btl_vader_backing_directory /tmp \
  "$LOCKSTEP" train "${common[@]}" --run-dir "$WORK/small" >"$WORK/out" 2>"$WORK/err"
RC=$?
set -e
[ "$RC" -ne 77 ] || { echo "cannot mount a tmpfs here: fallback not tested"; exit 77; }
OUT=$(cat "$WORK/out")
ERR=$(cat "$WORK/err")
expect_rc 0 "small /dev/shm"
bytes=$((2 * ((814090 * 4 + 4095) / 4096 * 4096)))  # 2 ranks' segments, each rounded up to whole pages
n=$(grep -c "gradient allreduce: MPI_Allreduce, not node shared memory (rank 0 on .*: cannot reserve $bytes bytes in /dev/shm: No space left on device)" <<<"$OUT" || true)
[ "$n" -eq 1 ] || fail "expected the fallback line once, found $n: $OUT"
run 1 30 inspect "$WORK/small/checkpoints"
small=$(grep -o "checksum [0-9a-f]*" <<<"$OUT")
[ "$small" = "$shm" ] || fail "the fallback ends with $small, shared memory with $shm"
echo "ok (shared memory, MPI_Allreduce and the fallback: $shm)"
