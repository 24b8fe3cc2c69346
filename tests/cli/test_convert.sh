#!/usr/bin/env bash
# `lockstep convert` end to end: Fashion-MNIST IDX -> HDF5 (float32 and uint8), then training on
# the .h5 files on 2 and 3 ranks (many ranks opening one file read-only) gives bitwise the same
# losses and accuracies as training on the IDX files with the same seed, with plain scaling and
# with standardisation; bad HDF5 input ends every rank with exit code 2 and one message.
source "$(dirname "$0")/lib.sh"
# CTest's ENVIRONMENT splits the flag list at ';', so only the first flag arrives: restore
# --oversubscribe for the 3-rank runs on a 2-core machine (Open MPI only).
mpi_version=$("$MPIEXEC" --version 2>&1 || true)
if [[ "$mpi_version" =~ Open\ MPI|OpenRTE && " $MPIEXEC_FLAGS " != *" --oversubscribe "* ]]; then
  MPIEXEC_FLAGS="$MPIEXEC_FLAGS --oversubscribe"
fi
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
train_args=(--config "$cfg" --set train.max_steps=30 --set train.progress=false)
h5_data=(--set data.train_images="$WORK/train.h5" --set data.train_labels= --set data.test_images="$WORK/test.h5"
         --set data.test_labels=)

# The learning figures of two runs' metrics.jsonl must be equal to the last bit.
same_metrics() {
  python3 - "$1/metrics.jsonl" "$2/metrics.jsonl" <<'PY' || fail "metrics differ: $1 vs $2"
import json, sys
a, b = (json.loads(open(p).read().splitlines()[-1]) for p in sys.argv[1:3])
keys = ["step", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"]
bad = [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]
assert a["step"] == 30 and not bad, bad
PY
}

# ---- convert -----------------------------------------------------------------------------------
run 2 120 convert --images "$FMNIST/train-images-idx3-ubyte.gz" --labels "$FMNIST/train-labels-idx1-ubyte.gz" \
  --out "$WORK/train.h5"
expect_rc 0 "convert train"
expect_out "60000 rows x 784 features (float32), 10 classes"
run 1 60 convert --images "$FMNIST/t10k-images-idx3-ubyte.gz" --labels "$FMNIST/t10k-labels-idx1-ubyte.gz" \
  --out "$WORK/test.h5"
expect_rc 0 "convert test"
run 1 60 convert --images "$FMNIST/t10k-images-idx3-ubyte.gz" --labels "$FMNIST/t10k-labels-idx1-ubyte.gz" \
  --out "$WORK/test_u8.h5" --dtype uint8 --compress 4
expect_rc 0 "convert uint8"
run 1 60 convert --images "$FMNIST/train-images-idx3-ubyte.gz" --labels "$FMNIST/train-labels-idx1-ubyte.gz" \
  --out "$WORK/train_u8.h5" --dtype uint8
expect_rc 0 "convert uint8 train"
h5dump -H "$WORK/train.h5" | grep -q 'DATASPACE  SIMPLE { ( 60000, 784 )' || fail "h5dump: /features shape"
h5dump -a /features/scale "$WORK/train_u8.h5" | grep -q '(0): 0.00392157' || fail "uint8 file lacks /features scale"
ls "$WORK" | grep -q '\.tmp\.' && fail "a temporary file was left behind"

# An existing output is refused (unchanged) unless --force.
before=$(sha256sum <"$WORK/test.h5")
run 2 60 convert --images "$FMNIST/t10k-images-idx3-ubyte.gz" --labels "$FMNIST/t10k-labels-idx1-ubyte.gz" \
  --out "$WORK/test.h5" --dtype uint8
expect_rc 2 "existing output"
expect_err_once "test.h5: already exists; use --force"
[ "$(sha256sum <"$WORK/test.h5")" = "$before" ] || fail "existing output was modified"
run 2 60 convert --images /nonexistent.gz --labels "$FMNIST/t10k-labels-idx1-ubyte.gz" --out "$WORK/x.h5"
expect_rc 2 "missing input"
expect_err_once "/nonexistent.gz: cannot open"
[ ! -e "$WORK/x.h5" ] || fail "a failed convert left its output"
run 1 20 convert --images a --labels b --out c --dtype float16
expect_rc 2 "bad dtype"
# --out is checked before anything is read: empty, a directory (with --force too), ...
idx_args=(--images "$FMNIST/t10k-images-idx3-ubyte.gz" --labels "$FMNIST/t10k-labels-idx1-ubyte.gz")
run 2 60 convert "${idx_args[@]}" --out ""
expect_rc 2 "empty --out"
expect_err_once "lockstep: error: --out: the path is empty; name the HDF5 file to write"
mkdir -p "$WORK/outdir"
for force in "" --force; do
  run 2 60 convert "${idx_args[@]}" --out "$WORK/outdir" $force
  expect_rc 2 "--out a directory $force"
  expect_err_once "lockstep: error: --out $WORK/outdir: is a directory; name a file in it, e.g. --out $WORK/outdir/data.h5"
  [ -z "$(ls -A "$WORK/outdir")" ] && ! ls "$WORK" | grep -q '\.tmp\.' || fail "convert wrote something ($force)"
done
# ... and label errors name convert's own option, not a config key.
run 2 60 convert "${idx_args[@]}" --out "$WORK/c5.h5" --classes 5
expect_rc 2 "--classes 5 on 10-class labels"
expect_err_once "t10k-labels-idx1-ubyte.gz: row 0: label 9 is outside [0, 5) (--classes 5)"
[ ! -e "$WORK/c5.h5" ] || fail "a failed convert left its output"

# ---- training on .h5 equals training on IDX, bitwise ---------------------------------------------
run 2 120 train "${train_args[@]}" --run-dir "$WORK/idx"
expect_rc 0 "train on IDX"
run 2 120 train "${train_args[@]}" "${h5_data[@]}" --run-dir "$WORK/h5"
expect_rc 0 "train on HDF5"
expect_out "data: 55000 train, 5000 validation, 10000 test samples"
same_metrics "$WORK/idx" "$WORK/h5"

run 2 120 train "${train_args[@]}" --set data.normalize=standardize --run-dir "$WORK/idx_std"
expect_rc 0 "standardized IDX"
run 2 120 train "${train_args[@]}" "${h5_data[@]}" --set data.normalize=standardize --run-dir "$WORK/h5_std"
expect_rc 0 "standardized HDF5"
same_metrics "$WORK/idx_std" "$WORK/h5_std"

# Three ranks open each file at once; uint8 (one of them compressed) gives the same floats.
run 3 120 train "${train_args[@]}" "${h5_data[@]}" --run-dir "$WORK/h5_3"
expect_rc 0 "3 ranks, float32 files"
run 3 120 train "${train_args[@]}" --set data.train_images="$WORK/train_u8.h5" --set data.train_labels= \
  --set data.test_images="$WORK/test_u8.h5" --set data.test_labels= --run-dir "$WORK/u8_3"
expect_rc 0 "3 ranks, uint8 files"
same_metrics "$WORK/h5_3" "$WORK/u8_3"

# A user block in front of the HDF5 data (h5jam) leaves a valid HDF5 file: it trains to the same
# figures. (It was "not an HDF5 data file": the signature was looked for at offset 0 only.)
printf 'made by the lockstep test suite\n' >"$WORK/ub.txt"
h5jam -i "$WORK/test.h5" -u "$WORK/ub.txt" -o "$WORK/test_ub.h5" >/dev/null
[ "$(od -An -c -j 512 -N 4 "$WORK/test_ub.h5" | tr -d ' ')" = "211HDF" ] || fail "h5jam put no user block of 512 bytes"
run 2 120 train "${train_args[@]}" "${h5_data[@]}" --set data.test_images="$WORK/test_ub.h5" --run-dir "$WORK/ub"
expect_rc 0 "test set with a user block"
same_metrics "$WORK/h5" "$WORK/ub"

# ---- bad input: exit 2 on every rank, one message -------------------------------------------------
run 2 30 train "${train_args[@]}" --set data.train_images="$WORK/train.h5" --run-dir "$WORK/bad"
expect_rc 2 "h5 with a labels file"
expect_err_once "data.train_images = $WORK/train.h5 is an HDF5 data file"
expect_err "data.train_labels"

run 2 30 train "${train_args[@]}" --set data.train_labels= --run-dir "$WORK/bad"
expect_rc 2 "IDX without labels"
expect_err_once "data.train_labels is empty, but data.train_images"

run 2 30 train "${train_args[@]}" "${h5_data[@]}" --set 'model.layers=[100, 10]' --run-dir "$WORK/bad"
expect_rc 2 "width"
expect_err_once "$WORK/train.h5: samples have 784 features but the model's input width (model.layers[0]) is 100"

run 2 30 train "${train_args[@]}" "${h5_data[@]}" --set data.classes=5 --set 'model.layers=[784, 5]' \
  --run-dir "$WORK/bad"
expect_rc 2 "labels out of range"
expect_err_once "$WORK/train.h5: dataset /labels: row 0: label 9 is outside [0, 5)"

h5copy -i "$WORK/test.h5" -o "$WORK/nolabels.h5" -s /features -d /features
run 2 30 train "${train_args[@]}" "${h5_data[@]}" --set data.test_images="$WORK/nolabels.h5" --run-dir "$WORK/bad"
expect_rc 2 "missing /labels"
expect_err_once "$WORK/nolabels.h5: dataset /labels is missing"

# A writer's lock on the file (taken here with flock(1) on fd 9) makes the open fail: the message
# names the fix, and the fix works.
exec 9<"$WORK/train.h5"
flock -x 9
run 2 30 train "${train_args[@]}" "${h5_data[@]}" --run-dir "$WORK/bad"
expect_rc 2 "locked file"
expect_err_once "HDF5_USE_FILE_LOCKING=FALSE"
expect_err_once "another process holds a lock on it"
# docs/data.md quotes this very message (with the file named train.h5).
quoted=$(grep '^lockstep: error: ' <<<"$ERR" | sed "s|$WORK/||")
grep -qF -- "$quoted" "$SOURCE_DIR/docs/data.md" || fail "docs/data.md does not quote the message: $quoted"
export HDF5_USE_FILE_LOCKING=FALSE
run 2 120 train "${train_args[@]}" "${h5_data[@]}" --run-dir "$WORK/nolock"
unset HDF5_USE_FILE_LOCKING
exec 9<&-
expect_rc 0 "locking disabled"
echo "ok"
