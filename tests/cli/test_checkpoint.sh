#!/usr/bin/env bash
# Checkpoint files end to end on 2 ranks: the HDF5 schema as h5dump sees it, `inspect` and
# `eval`, keep-K pruning with best.h5 and the latest pointer, resume refusals (other
# architecture, other optimizer), and a damaged latest checkpoint reported with the previous
# one offered, all with exit code 2 and nothing overwritten.
source "$(dirname "$0")/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
ck="$WORK/run/checkpoints"

run 2 120 train --config "$cfg" --run-dir "$WORK/run" --set train.max_steps=50 --set checkpoint.every_steps=10 \
  --set checkpoint.keep=2 --set 'model.layers=[784, 64, 10]'
expect_rc 0
# every 10 steps -> 10..50, keep 2 -> 40 and 50; latest -> 50.
[ -f "$ck/step-000000040.h5" ] && [ -f "$ck/step-000000050.h5" ] || fail "expected the two newest checkpoints: $(ls "$ck")"
[ ! -e "$ck/step-000000030.h5" ] || fail "step 30 should have been pruned"
[ "$(cat "$ck/latest")" = "step-000000050.h5" ] || fail "latest should point at step 50: $(cat "$ck/latest")"
ls "$ck" | grep -q tmp && fail "temporary files left: $(ls "$ck")"

# The schema, as any HDF5 tool sees it.
h5dump -H "$ck/step-000000050.h5" >"$WORK/h5" || fail "h5dump cannot read the checkpoint"
for pattern in 'GROUP "model"' 'GROUP "layer_0"' 'GROUP "layer_1"' 'GROUP "optimizer"' 'GROUP "trainer"' \
               'GROUP "rng"' 'DATASET "exp_avg"' 'DATASET "exp_avg_sq"' 'DATASET "config"' 'ATTRIBUTE "format_version"'; do
  grep -qF "$pattern" "$WORK/h5" || fail "h5dump output lacks $pattern"
done
h5dump -d /model/layer_0/weight -H "$ck/step-000000050.h5" | grep -q "SIMPLE { ( 64, 784 ) / ( 64, 784 ) }" \
  || fail "layer_0/weight should be [64, 784]"
h5dump -d /model/layer_1/bias -H "$ck/step-000000050.h5" | grep -q "SIMPLE { ( 10 ) / ( 10 ) }" \
  || fail "layer_1/bias should be [10]"
h5dump -d /optimizer/exp_avg -H "$ck/step-000000050.h5" | grep -q "SIMPLE { ( 50890 ) / ( 50890 ) }" \
  || fail "optimizer/exp_avg should hold one value per parameter (50890)"
h5dump -a /trainer/global_step "$ck/step-000000050.h5" | grep -q "(0): 50" || fail "trainer/global_step should be 50"

run 1 30 inspect "$ck"
expect_rc 0
expect_out "layer 0: weight [64, 784], bias [64], relu"
expect_out "50890 parameters"
expect_out "adam"
expect_out "global step 50"

# eval reproduces the test accuracy the run reported for its final weights.
run 2 60 eval --checkpoint "$ck/step-000000050.h5"
expect_rc 0
reported=$(python3 -c "import json,sys; print('%.4f' % json.loads(open(sys.argv[1]).readlines()[-1])['test_accuracy'])" "$WORK/run/metrics.jsonl")
expect_out "test        accuracy $reported"

# Resume refusals list what differs, before any training.
before=$(sha256sum "$ck"/*.h5)
run 2 60 train --config "$cfg" --run-dir "$WORK/run" --resume auto --set train.max_steps=60 \
  --set 'model.layers=[784, 32, 10]' --set optimizer.name=sgd
expect_rc 2 "incompatible resume"
expect_err_once "cannot resume from"
expect_err "model.layers: checkpoint has [784, 64, 10], config has [784, 32, 10]"
expect_err "optimizer.name: checkpoint has adam, config has sgd"
[ "$(sha256sum "$ck"/*.h5)" = "$before" ] || fail "a refused resume changed the checkpoints"

# A damaged latest checkpoint: reported as such, and the previous one is offered.
head -c 4000 "$ck/step-000000050.h5" >"$WORK/cut" && cat "$WORK/cut" >"$ck/step-000000050.h5"
run 2 60 train --config "$cfg" --run-dir "$WORK/run" --resume auto --set train.max_steps=60 --set 'model.layers=[784, 64, 10]'
expect_rc 2 "damaged checkpoint"
expect_err "step-000000050.h5"
expect_err "probably truncated"
expect_err "the previous checkpoint $ck/step-000000040.h5 reads fine"

# Not an HDF5 file at all.
echo "hello" >"$WORK/not.h5"
run 1 30 inspect "$WORK/not.h5"
expect_rc 2 "not HDF5"
expect_err "not an HDF5 file"

# Resuming from the offered one works and continues at step 40.
run 2 60 train --config "$cfg" --run-dir "$WORK/run" --resume "$ck/step-000000040.h5" --set train.max_steps=45 \
  --set 'model.layers=[784, 64, 10]'
expect_rc 0
expect_out "resuming from $ck/step-000000040.h5: epoch 1, step 40"
expect_out "done: 45 steps"
echo "ok"
