#!/usr/bin/env bash
# The bad-input matrix (tests/robustness/README.md): every case runs on 2 ranks (some on 3) with
# `--resume auto` against an existing run directory (a checkpoint, metrics.jsonl, config.toml),
# and must end every rank by itself within LIMIT seconds with exit code 2 and exactly one error
# naming the file, key or row and the cause; the run directory stays bit for bit as it was.
# Also: gzip and raw IDX are told by content, not name, and train identically.
source "$(dirname "$0")/lib.sh"
LIMIT=${LOCKSTEP_BAD_INPUT_LIMIT:-10}
# Writes HDF5 files the HDF5 command-line tools cannot (tests/support/make_h5_case.cpp); CTest names it.
MAKE_H5_CASE=${MAKE_H5_CASE:-$(dirname "$LOCKSTEP")/tests/make_h5_case}
small_setup "$WORK/base.toml" --gzip
cat >>"$WORK/base.toml" <<EOF
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
bad 2 "data.train_labels is empty, but data.train_images = $D/absent.h5: cannot open (no such file or directory)" \
  --set data.train_images="$D/absent.h5" "${h5[@]}"
bad 3 "data.test_labels is empty, but data.test_images = $D/absent.h5: cannot open (no such file or directory)" \
  --set data.test_images="$D/absent.h5" --set data.test_labels=
head -c 1500 "$D/nan.h5" >"$D/cut.h5"
bad 2 "$D/cut.h5: cannot open as HDF5" --set data.train_images="$D/cut.h5" "${h5[@]}"
bad 2 "$D/nan.h5 is an HDF5 data file, which holds its labels" --set data.train_images="$D/nan.h5"
gzip -c "$D/nan.h5" >"$D/h5.gz"
bad 2 "$D/h5.gz: not an IDX file" --set data.train_images="$D/h5.gz"
# Attributes and labels of other types, as h5py writes them: one message naming the file, the
# dataset and the attribute; no HDF5 error stack (expect_one_error checks). The string scale
# was exit 1 with 15 lines of HDF5-DIAG and no file name; enum labels read "HDF5 type class 8";
# a uint64 label of 2^63 + 5 was reported clamped, as 9223372036854775807.
"$MAKE_H5_CASE" scale-string "$D/scale-str.h5"
bad 2 "$D/scale-str.h5: dataset /features: attribute 'scale' has type string; expected a number" \
  --set data.train_images="$D/scale-str.h5" "${h5[@]}"
"$MAKE_H5_CASE" labels-bool "$D/bool.h5"
bad 3 "$D/bool.h5: dataset /labels holds bool (an HDF5 enum FALSE/TRUE, as h5py writes numpy bools) values" \
  --set data.train_images="$D/bool.h5" "${h5[@]}"
"$MAKE_H5_CASE" labels-enum "$D/enum.h5"
bad 2 "$D/enum.h5: dataset /labels holds enum (an HDF5 enumeration of int8: shirt, shoe, bag, coat) values" \
  --set data.test_images="$D/enum.h5" --set data.test_labels=
LABEL_TYPE=u64 make_h5 "$D/u64.h5" 64 16 "[0.25] * (n * d)" "[2**63 + 5 if i == 6 else i % 4 for i in range(n)]"
bad 2 "$D/u64.h5: dataset /labels: row 6: label 9223372036854775813 is outside [0, 4)" \
  --set data.train_images="$D/u64.h5" "${h5[@]}"

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
# Ranges from the update formulas, in single precision (beta1 = 1 used to pass and give NaN at step 2).
bad 2 "key optimizer.beta1: must be < 1, got 1.0" --set optimizer.beta1=1
bad 3 "key optimizer.beta2: must be < 1, got 0.99999999, which rounds to 1.0 in single precision" \
  --set optimizer.beta2=0.99999999
bad 2 "key optimizer.momentum: must be < 1, got 1.0" --set optimizer.name=momentum --set optimizer.momentum=1
bad 2 "key optimizer.alpha: must be < 1, got 1.0" --set optimizer.name=rmsprop --set optimizer.alpha=1
bad 2 "key optimizer.lr: must be 0 or at least 1.17549e-38 in magnitude" --set optimizer.lr=1e-40
bad 2 "schedule.min_lr: 0.01 is above optimizer.lr = 0.001: the cosine schedule decays from lr down to min_lr" \
  --set schedule.kind=cosine --set schedule.min_lr=0.01
bad 2 "optimizer.weight_decay: 2 with optimizer.lr = 0.5 scales the weights by 1 - lr * weight_decay = 0 each step" \
  --set optimizer.name=adamw --set optimizer.lr=0.5 --set optimizer.weight_decay=2
bad 2 "key model.layers: element 1 is 2147483648 (must be <= 2147483647)" --set 'model.layers=[16, 2147483648, 4]'
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

# ---- sizes that cannot fit: rejected before anything is allocated, naming the key and the bytes ---
# (They ended as "std::bad_alloc", exit 1.) The sizes are far beyond any machine's memory; the 2
# ranks of a 2-rank job share this host's.
bad 2 "data.eval_batch = 2147483647: the run needs " --set data.eval_batch=2147483647
expect_err "of host memory per rank"
expect_err "for the 2 ranks on this host, more than the "
expect_err "(MemTotal in /proc/meminfo): evaluation activations for 2147483647 rows"
# New runs (resuming refuses another batch or model first): no run directory is created.
bad_new() {
  local np=$1 text=$2 fresh=$WORK/fresh
  shift 2
  rm -rf "$fresh"
  run_ranks "$np" "$LIMIT" train --config "$WORK/base.toml" --run-dir "$fresh" "$@"
  [ "$RC" -ne 124 ] && [ "$RC" -ne 137 ] || fail "hang: still running after $LIMIT s: $*"$'\n'"stderr: $ERR"
  expect_every_rank "$np" 2
  expect_one_error "$text"
  [ ! -e "$fresh" ] || fail "a rejected run created its run directory: $*"
  cases=$((cases + 1))
}
bad_new 2 "train.batch_size = 4000000000: the run needs " --set train.batch_size=4000000000 \
  --set 'model.layers=[16, 4096, 4]'
expect_err "training activations for 2000000000 rows per rank"
bad_new 3 "model.layers = [16, 10000000, 10000000, 4]: the run needs " \
  --set 'model.layers=[16, 10000000, 10000000, 4]'
expect_err "bytes) of host memory per rank"
bad_new 2 "model.layers = [16, 2147483647, 2147483647, 2147483647, 4]: the run needs more than 2^64 bytes" \
  --set 'model.layers=[16, 2147483647, 2147483647, 2147483647, 4]'
# Sizes the plan lets through (1.7 GiB), under an address-space limit (ulimit -v, as batch
# systems set): the allocation that fails says what it was for. One rank without mpirun, whose
# daemons would run under the limit too.
rm -rf "$WORK/fresh"
set +e
(ulimit -v 1000000 && timeout -k 5 "$LIMIT" "$LOCKSTEP" train --config "$WORK/base.toml" --run-dir "$WORK/fresh" \
  --set 'model.layers=[16, 2000000, 4]' --set data.eval_batch=1 >"$WORK/out" 2>"$WORK/err")
RC=$?
set -e
ERR=$(cat "$WORK/err")
OUT=$(cat "$WORK/out")
expect_rc 2 "an allocation failing under ulimit -v"
expect_one_error "out of memory while allocating the "
expect_err "of host memory could not be allocated"
expect_err "(address-space limit, ulimit -v: 976.6 MiB)"
[ ! -e "$WORK/fresh" ] || fail "a failed allocation left a run directory"
cases=$((cases + 1))

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
