#!/usr/bin/env bash
# `eval` evaluates a checkpoint under the data settings it was trained with: another seed, split,
# class set or normalisation (from --config or --set), or other training data, is refused with
# exit code 2 and each difference listed; model and training settings are taken from the
# checkpoint with a note; data.val_size=0 scores the test set without reading the training file
# (normalize = scale), while standardize still needs it and says why. A matching config gives
# exactly the accuracies the run reported.
source "$(dirname "$0")/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
ck="$WORK/run/checkpoints"

run 2 120 train --config "$cfg" --run-dir "$WORK/run" --set train.max_steps=20 --set 'model.layers=[784, 32, 10]' \
  --set train.progress=false
expect_rc 0 "training the checkpoint"
metric() { python3 -c "import json,sys; print('%.4f' % json.loads(open(sys.argv[1]).readlines()[-1])[sys.argv[2]])" "$@"; }
val=$(metric "$WORK/run/metrics.jsonl" val_accuracy)
test_acc=$(metric "$WORK/run/metrics.jsonl" test_accuracy)

# Its own stored config: the accuracies the run reported, no note.
run 2 60 eval --checkpoint "$ck"
expect_rc 0 "eval with the stored config"
expect_out "validation  accuracy $val"
expect_out "test        accuracy $test_acc"
grep -qF "note: eval takes the model" <<<"$OUT" && fail "a note without any differing setting: $OUT"
# The config file the run was started with (without its --set): the same data settings, the same
# accuracies; the model and the training settings it names otherwise are listed as not used.
run 2 60 eval --checkpoint "$ck" --config "$cfg" --set 'model.layers=[784, 16, 10]'
expect_rc 0 "eval with the run's config file"
expect_out "validation  accuracy $val"
expect_out "test        accuracy $test_acc"
expect_out "note: eval takes the model from the checkpoint and does not train; these settings differ from the checkpoint's and are not used:"
expect_out "model.layers: checkpoint has [784, 32, 10], config has [784, 16, 10]"
expect_out "train.max_steps: checkpoint has 20, config has 0"
expect_out "checkpoint $ck/step-000000020.h5: 784-32-10 relu MLP"

# Another seed: its "validation" rows are mostly the model's training rows (accuracy inflated).
run 2 60 eval --checkpoint "$ck" --set run.seed=7
expect_rc 2 "another seed"
expect_err_once "lockstep: error: cannot evaluate $ck with these settings: they define the validation split or the input transform"
expect_err "run.seed (the validation split): checkpoint has 42, config has 7"
grep -qF "accuracy" <<<"$OUT" && fail "a refused eval printed accuracies: $OUT"
# Every differing data setting in one message.
run 2 60 eval --checkpoint "$ck" --set data.normalize=standardize --set data.val_size=1000 \
  --set data.train_limit=100 --set 'data.class_subset=[0, 1]' --set data.classes=12
expect_rc 2 "other split and transform"
expect_err_once "cannot evaluate $ck with these settings"
expect_err "data.normalize: checkpoint has 'scale', config has 'standardize'"
expect_err "data.val_size: checkpoint has 5000, config has 1000"
expect_err "data.train_limit: checkpoint has 0, config has 100"
expect_err "data.class_subset: checkpoint has [], config has [0, 1]"
expect_err "data.classes: checkpoint has 10, config has 12"
# Another config file: the student's seed 1 (the tester's inflated 0.8824).
run 2 60 eval --checkpoint "$ck" --config "$SOURCE_DIR/jobs/configs/fashion_mnist_student.toml"
expect_rc 2 "the student config"
expect_err "run.seed (the validation split): checkpoint has 42, config has 1"
# Other training data behind the validation split (here the test files), by fingerprint.
run 2 60 eval --checkpoint "$ck" --set data.train_images="$FMNIST/t10k-images-idx3-ubyte.gz" \
  --set data.train_labels="$FMNIST/t10k-labels-idx1-ubyte.gz"
expect_rc 2 "other training data"
expect_err_once "cannot evaluate $ck on these data: the validation set is drawn from it (data.val_size = 5000)"
expect_err "data.train_images: the training data differ (the checkpoint trained on 60000 samples"

# The test set alone: the training file is not opened (normalize = scale), same test accuracy.
run 2 60 eval --checkpoint "$ck" --set data.val_size=0 --set data.train_images=/nonexistent/train.gz \
  --set data.train_labels=/nonexistent/labels.gz
expect_rc 0 "test set only, no training file"
expect_out "test        accuracy $test_acc"
grep -qF "validation" <<<"$OUT" && fail "validation scored with data.val_size=0: $OUT"
# ... but the validation set is drawn from the training file: its absence is explained.
run 2 60 eval --checkpoint "$ck" --set data.train_images=/nonexistent/train.gz
expect_rc 2 "validation without the training file"
expect_err_once "data.train_images = /nonexistent/train.gz: no such file; eval needs the training data here because the validation set is drawn from it (data.val_size = 5000) (to score the test set alone, --set data.val_size=0)"

# standardize: the statistics come from the training rows of the checkpoint's split, also when
# only the test set is scored; without the training file eval says why it needs it.
run 2 120 train --config "$cfg" --run-dir "$WORK/std" --set train.max_steps=5 --set 'model.layers=[784, 16, 10]' \
  --set data.normalize=standardize --set train.progress=false
expect_rc 0 "training a standardize checkpoint"
std_test=$(metric "$WORK/std/metrics.jsonl" test_accuracy)
run 2 60 eval --checkpoint "$WORK/std/checkpoints" --set data.val_size=0
expect_rc 0 "standardize, test set only"
expect_out "test        accuracy $std_test"
run 2 60 eval --checkpoint "$WORK/std/checkpoints" --set data.val_size=0 --set data.train_images=/nonexistent/train.gz
expect_rc 2 "standardize without the training file"
expect_err_once "data.train_images = /nonexistent/train.gz: no such file; eval needs the training data here because data.normalize = standardize takes its mean and deviation from the training rows the model was trained on"
run 2 60 eval --checkpoint "$WORK/std/checkpoints" --set data.normalize=scale
expect_rc 2 "scale for a standardize checkpoint"
expect_err "data.normalize: checkpoint has 'standardize', config has 'scale'"
echo "PASS"
