#!/usr/bin/env bash
# The bad-input matrix (tests/robustness/README.md): every case runs on 2 ranks (some on 3) with
# `--resume auto` against an existing run directory (a checkpoint, metrics.jsonl, config.toml),
# and must end every rank by itself within LIMIT seconds with exit code 2 and exactly one error
# naming the file, key or row and the cause; the run directory stays bit for bit as it was.
# Also: gzip and raw IDX are told by content, not name, and train identically.
source "$(dirname "$0")/lib.sh"
LIMIT=${LOCKSTEP_BAD_INPUT_LIMIT:-10}
D=$WORK/data
mkdir -p "$D"

# ---- a small valid dataset: 64 training and 20 test images of 4x4, 4 classes --------------------
make_idx "$D/train-img.gz" u8 64,4,4 "[random.randrange(256) for _ in range(n * d)]" gzip
make_idx "$D/train-lab.gz" u8 64 "[i % 4 for i in range(n)]" gzip
make_idx "$D/test-img" u8 20,4,4 "[random.randrange(256) for _ in range(n * d)]"
make_idx "$D/test-lab" u8 20 "[(i * 3) % 4 for i in range(n)]"
cat >"$WORK/base.toml" <<EOF
[data]
train_images = "$D/train-img.gz"
train_labels = "$D/train-lab.gz"
test_images = "$D/test-img"
test_labels = "$D/test-lab"
classes = 4
val_size = 8
[model]
layers = [16, 8, 4]
[train]
epochs = 2
batch_size = 16
progress = false
EOF
PREV=$WORK/prev
run 2 60 train --config "$WORK/base.toml" --run-dir "$PREV"
expect_rc 0 "the base run"
[ -f "$PREV/checkpoints/latest" ] && [ -s "$PREV/metrics.jsonl" ] && [ -f "$PREV/config.toml" ] \
  || fail "the base run left no checkpoint, metrics or config: $(ls -R "$PREV")"
digest=$(dir_digest "$PREV")

cases=0
slowest=0
# bad NP SUBSTRING ARGS...: one case against the existing run directory, with base.toml unless
# CONFIG names another config file.
bad() {
  local np=$1 text=$2
  shift 2
  run_ranks "$np" "$LIMIT" train --config "${CONFIG:-$WORK/base.toml}" --run-dir "$PREV" --resume auto "$@"
  [ "$RC" -ne 124 ] && [ "$RC" -ne 137 ] || fail "hang: still running after $LIMIT s: $*"$'\n'"stderr: $ERR"
  # (mpirun's own status is 0 here: told not to abort the job, it does not pass the ranks' codes
  # on; tests/cli/test_bad_input.sh checks it in the ordinary mode.)
  expect_every_rank "$np" 2
  expect_one_error "$text"
  [ "$(dir_digest "$PREV")" = "$digest" ] || fail "the run directory changed after a rejected run: $*"
  cases=$((cases + 1))
  slowest=$(awk -v a="$slowest" -v b="$SECONDS_TAKEN" 'BEGIN { print (b > a) ? b : a }')
}

# ---- data: IDX --------------------------------------------------------------------------------
bad 2 "$D/missing.gz: cannot open (No such file or directory)" --set data.train_images="$D/missing.gz"
bad 3 "$D/missing-lab: cannot open (No such file or directory)" --set data.test_labels="$D/missing-lab"
bad 2 "$D: not a regular file (it is a directory)" --set data.train_images="$D"
: >"$D/empty"
bad 2 "$D/empty: empty file" --set data.train_labels="$D/empty"
head -c 300 "$D/train-img.gz" >"$D/cut.gz"
bad 2 "$D/cut.gz: truncated gzip file" --set data.train_images="$D/cut.gz"
gunzip -c "$D/train-img.gz" | head -c 500 >"$D/cut-raw"
bad 2 "$D/cut-raw: truncated: the header promises 64 items" --set data.train_images="$D/cut-raw"
make_idx "$D/lab63" u8 63 "[i % 4 for i in range(n)]"
bad 2 "image and label counts disagree: $D/train-img.gz has 64 images but $D/lab63 has 63 labels" \
  --set data.train_labels="$D/lab63"
make_idx "$D/lab-big" u8 64 "[4 if i == 5 else i % 4 for i in range(n)]"
bad 2 "$D/lab-big: row 5: label 4 is outside [0, 4)" --set data.train_labels="$D/lab-big"
make_idx "$D/lab-neg" i32 20 "[-1 if i == 3 else i % 4 for i in range(n)]"
bad 3 "$D/lab-neg: row 3: label -1 is outside [0, 4)" --set data.test_labels="$D/lab-neg"
make_idx "$D/img-wide" u8 64,5,4 "[random.randrange(256) for _ in range(n * d)]"
bad 2 "$D/img-wide: samples have 20 features but the model's input width (model.layers[0]) is 16" \
  --set data.train_images="$D/img-wide"
make_idx "$D/img-2" u8 2,4,4 "[random.randrange(256) for _ in range(n * d)]"
make_idx "$D/lab-2" u8 2 "[0, 1]"
bad 3 "$D/img-2: 2 training samples are fewer than the 3 ranks" --set data.train_images="$D/img-2" \
  --set data.train_labels="$D/lab-2" --set data.val_size=0
make_idx "$D/img-f32-nan" f32 64,16 "[float('nan') if i == 40 else 0.5 for i in range(n * d)]"
bad 2 "$D/img-f32-nan: row 2: non-finite value" --set data.train_images="$D/img-f32-nan"

# ---- data: HDF5 -------------------------------------------------------------------------------
h5=(--set data.train_labels= --set data.val_size=8)
make_h5 "$D/nan.h5" 64 16 "[float('nan') if i == 2 * 16 + 1 else 0.25 for i in range(n * d)]" "[i % 4 for i in range(n)]"
bad 2 "$D/nan.h5: dataset /features: row 2, column 1: NaN (features must be finite)" --set data.train_images="$D/nan.h5" "${h5[@]}"
make_h5 "$D/inf.h5" 20 16 "[float('-inf') if i == 7 * 16 + 3 else 0.25 for i in range(n * d)]" "[i % 4 for i in range(n)]"
bad 3 "$D/inf.h5: dataset /features: row 7, column 3: infinite value" --set data.test_images="$D/inf.h5" --set data.test_labels=
make_h5 "$D/neg.h5" 64 16 "[0.25] * (n * d)" "[-1 if i == 9 else i % 4 for i in range(n)]"
bad 2 "$D/neg.h5: dataset /labels: row 9: label -1 is outside [0, 4)" --set data.train_images="$D/neg.h5" "${h5[@]}"
make_h5 "$D/big.h5" 64 16 "[0.25] * (n * d)" "[7 if i == 60 else i % 4 for i in range(n)]"
bad 2 "$D/big.h5: dataset /labels: row 60: label 7 is outside [0, 4)" --set data.train_images="$D/big.h5" "${h5[@]}"
make_h5 "$D/nolabels.h5" 64 16 "[0.25] * (n * d)" "[]" nolabels
bad 2 "$D/nolabels.h5: dataset /labels is missing" --set data.train_images="$D/nolabels.h5" "${h5[@]}"
make_h5 "$D/wide.h5" 64 12 "[0.25] * (n * d)" "[i % 4 for i in range(n)]"
bad 2 "$D/wide.h5: samples have 12 features but the model's input width (model.layers[0]) is 16" \
  --set data.train_images="$D/wide.h5" "${h5[@]}"
make_h5 "$D/two.h5" 2 16 "[0.25] * (n * d)" "[0, 1]"
bad 3 "$D/two.h5: 2 training samples are fewer than the 3 ranks" --set data.train_images="$D/two.h5" \
  --set data.train_labels= --set data.val_size=0
head -c 1500 "$D/nan.h5" >"$D/cut.h5"
bad 2 "$D/cut.h5: cannot open as HDF5" --set data.train_images="$D/cut.h5" "${h5[@]}"
bad 2 "$D/nan.h5 is an HDF5 data file, which holds its labels" --set data.train_images="$D/nan.h5"
gzip -c "$D/nan.h5" >"$D/h5.gz"
bad 2 "$D/h5.gz: not an IDX file" --set data.train_images="$D/h5.gz"

# ---- config -------------------------------------------------------------------------------------
printf '[trainer]\nepochs = 3\n' >"$WORK/section.toml"
CONFIG=$WORK/section.toml bad 2 "$WORK/section.toml: unknown section [trainer]"
printf '[optimizer]\nlrr = 0.1\n' >"$WORK/key.toml"
CONFIG=$WORK/key.toml bad 2 "$WORK/key.toml: unknown key 'optimizer.lrr'"
bad 3 "--set train.epoch=3: unknown key 'train.epoch'" --set train.epoch=3
printf '[train]\nepochs = "ten"\n' >"$WORK/type.toml"
CONFIG=$WORK/type.toml bad 2 "$WORK/type.toml: key train.epochs: expected an integer"
bad 2 "--set model.layers: key model.layers: expected a list of integers" --set model.layers=16
bad 2 "--set train.progress: key train.progress: expected true or false" --set train.progress=1
bad 2 "key optimizer.lr: must be > 0, got -0.1" --set optimizer.lr=-0.1
bad 2 "key optimizer.lr: must be > 0, got 0" --set optimizer.lr=0
bad 2 "key train.batch_size: must be >= 1, got 0" --set train.batch_size=0
bad 2 "key train.batch_size: must be >= 1, got -4" --set train.batch_size=-4
bad 2 "key train.epochs: must be >= 1, got 0" --set train.epochs=0
bad 2 "key train.epochs: must be >= 1, got -1" --set train.epochs=-1
bad 3 "train.batch_size: the global batch (2) is smaller than the number of ranks (3)" --set train.batch_size=2
bad 2 "key model.layers: element 1 is 0 (must be >= 1)" --set 'model.layers=[16, 0, 4]'
bad 2 "key optimizer.name: unknown value \"adamm\" (expected one of: sgd, momentum, adam" --set optimizer.name=adamm
bad 2 "key model.activation: unknown value \"relu6\"" --set model.activation=relu6
bad 2 "key schedule.kind: unknown value \"linear\"" --set schedule.kind=linear
CONFIG=$WORK bad 2 "config file $WORK: cannot be read: not a regular file (it is a directory)"
CONFIG=$WORK/absent.toml bad 2 "config file $WORK/absent.toml: cannot be read (no such file)"
# A checkpoint directory that cannot be written: a regular file in its path (as root, permission
# bits do not stop a write, so they cannot make this case), and a read-only file system.
: >"$WORK/afile"
bad 2 "checkpoint directory $WORK/afile/ck: cannot be created: $WORK/afile is not a directory" \
  --set checkpoint.dir="$WORK/afile/ck"
bad 3 "checkpoint directory $WORK/afile: exists and is not a directory" --set checkpoint.dir="$WORK/afile"
ro_mounted=0
mkdir -p "$WORK/ro"
if mount -t tmpfs -o ro,size=1m tmpfs "$WORK/ro" 2>/dev/null; then
  ro_mounted=1
  trap 'umount "$WORK/ro" 2>/dev/null; rm -rf "$WORK"' EXIT
  bad 2 "checkpoint directory $WORK/ro/ck: cannot be written: $WORK/ro is not writable (Read-only file system)" \
    --set checkpoint.dir="$WORK/ro/ck"
  umount "$WORK/ro"
  trap 'rm -rf "$WORK"' EXIT
fi

# ---- launch: one rank while the launcher says it started several (PMI mismatch) -------------------
# A singleton (no mpirun: as srun with a mismatched PMI starts each task, or a batch script that
# forgot srun). Under `mpirun -np 1` the launcher's own OMPI_COMM_WORLD_SIZE=1 says one rank on
# purpose, whatever the allocation (tests/unit/test_launch.cpp).
singleton() {
  local var=$1 text=$2
  set +e
  env "$var" timeout -k 5 "$LIMIT" "$LOCKSTEP" train --config "$WORK/base.toml" --run-dir "$PREV" --resume auto \
    >"$WORK/out" 2>"$WORK/err"
  RC=$?
  set -e
  ERR=$(cat "$WORK/err")
  OUT=$(cat "$WORK/out")
  expect_rc 2 "singleton under $var"
  expect_one_error "$text"
  [ "$(dir_digest "$PREV")" = "$digest" ] || fail "the run directory changed after the PMI mismatch ($var)"
  cases=$((cases + 1))
}
singleton SLURM_NTASKS=4 "SLURM_NTASKS=4 says 4 tasks were started"
expect_err "srun --mpi=pmix"
singleton PMI_SIZE=2 "PMI_SIZE=2 says 2 tasks were started"

# ---- gzip and raw IDX: told by content, not name; both train to the same numbers -------------------
gunzip -c "$D/train-img.gz" >"$D/raw-named.gz"
gzip -c "$D/test-img" >"$D/gzip-named"
run 2 60 train --config "$WORK/base.toml" --run-dir "$WORK/swapped" --set data.train_images="$D/raw-named.gz" \
  --set data.test_images="$D/gzip-named"
expect_rc 0 "raw file named .gz and gzip file without .gz"
python3 - "$PREV/metrics.jsonl" "$WORK/swapped/metrics.jsonl" <<'PY' || fail "raw and gzip inputs trained differently"
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
keys = ["step", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"]
assert len(a) == len(b) == 2, (len(a), len(b))
bad = [(k, x.get(k), y.get(k)) for x, y in zip(a, b) for k in keys if x.get(k) != y.get(k)]
assert not bad, bad
PY
echo "ok ($cases rejected cases, slowest ${slowest} s; read-only mount case: $([ $ro_mounted = 1 ] && echo run || echo skipped, mount not permitted))"
