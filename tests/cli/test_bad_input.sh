#!/usr/bin/env bash
# Bad input ends every rank quickly with exit code 2 and one message naming the key or file,
# before training starts, and leaves an existing run directory untouched.
source "$(dirname "$0")/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"

run 2 20 trian --config "$cfg" --run-dir "$WORK/a"
expect_rc 2 "unknown command"
expect_err_once "unknown command 'trian'; the commands are train, distill, eval, inspect"

run 1 20
expect_rc 2 "no command"
expect_err_once "lockstep: error: no command given; the commands are train, distill"

run 2 20 train --config "$cfg" --run-dir "$WORK/a" --set optimizer.lrr=0.1
expect_rc 2 "unknown key"
expect_err_once "unknown key 'optimizer.lrr'"

run 2 20 train --config "$cfg" --run-dir "$WORK/a" --set optimizer.lr=-1
expect_rc 2 "negative lr"
expect_err_once "optimizer.lr: must be > 0"

run 2 20 train --config "$cfg" --run-dir "$WORK/a" --set train.batch_size=1
expect_rc 2 "batch smaller than ranks"
expect_err_once "train.batch_size"

printf '[model]\nlayers = [784, 0, 10]\n' >"$WORK/zero.toml"
run 2 20 train --config "$WORK/zero.toml" --run-dir "$WORK/a"
expect_rc 2 "zero width"
expect_err_once "model.layers: element 1 is 0"

printf '[optimizer\nname = "adam"\n' >"$WORK/broken.toml"
run 2 20 train --config "$WORK/broken.toml" --run-dir "$WORK/a"
expect_rc 2 "TOML syntax"
expect_err "broken.toml:1"

run 2 20 train --config "$cfg" --run-dir "$WORK/a" --set data.train_images=/nonexistent/train.gz
expect_rc 2 "missing data file"
expect_err_once "/nonexistent/train.gz: cannot open"

run 2 20 train --config "$cfg" --run-dir "$WORK/a" --set data.train_labels="$FMNIST/t10k-labels-idx1-ubyte.gz"
expect_rc 2 "count mismatch"
expect_err_once "image and label counts disagree"

run 2 20 train --config "$cfg" --run-dir "$WORK/a" --set 'model.layers=[100, 10]'
expect_rc 2 "width mismatch"
expect_err_once "(model.layers[0]) is 100"

# An existing run is never overwritten.
mkdir -p "$WORK/old"
echo '{"epoch": 1}' >"$WORK/old/metrics.jsonl"
before=$(sha256sum "$WORK/old/metrics.jsonl")
run 2 20 train --config "$cfg" --run-dir "$WORK/old" --set train.max_steps=1
expect_rc 2 "existing run"
expect_err_once "already holds a run"
[ "$(sha256sum "$WORK/old/metrics.jsonl")" = "$before" ] || fail "existing metrics were modified"

run 1 20 train --bogus-flag
expect_rc 2 "unknown flag"

# eval: nothing to evaluate is an error (it printed the header and exited 0), and it has no
# --run-dir (it accepted one and ignored it).
run 1 60 train --config "$cfg" --run-dir "$WORK/ck" --set train.max_steps=2 --set 'model.layers=[784, 16, 10]' \
  --set train.progress=false
expect_rc 0 "a checkpoint to evaluate"
run 2 30 eval --checkpoint "$WORK/ck/checkpoints" --set data.val_size=0 --set data.test_images= --set data.test_labels=
expect_rc 2 "eval without a validation or test set"
expect_err_once "lockstep: error: nothing to evaluate: data.val_size is 0 and data.test_images is empty"
# An evaluation batch that no host holds is refused before it is allocated, naming the key.
run 2 30 eval --checkpoint "$WORK/ck/checkpoints" --set data.eval_batch=2147483647
expect_rc 2 "eval batch beyond memory"
expect_err_once "lockstep: error: data.eval_batch = 2147483647: the run needs "
expect_err "evaluation activations for 2147483647 rows"
run 1 30 eval --checkpoint "$WORK/ck/checkpoints" --run-dir "$WORK/elsewhere"
expect_rc 2 "eval --run-dir"
expect_err "--run-dir"
[ ! -e "$WORK/elsewhere" ] || fail "eval created a run directory"
echo "ok"
