#!/usr/bin/env bash
# `lockstep distill` and fine-tuning end to end on 2 ranks with Fashion-MNIST: the [distill],
# [init] and class-subset keys in config-keys; a distillation with --cache-teacher (the cache's
# layout, the teacher recorded in the student's checkpoint and shown by inspect); a resume that
# reuses the cache; refusals with exit code 2 and one message (another teacher on resume, a cache
# of another teacher, no teacher, an init checkpoint whose layers differ); eval --time-inference;
# a frozen-body fine-tune on classes 5-9 from 1,000 samples whose frozen layers are bitwise those
# of the checkpoint it started from.
source "$(dirname "$0")/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
quiet=(--set train.progress=false)

run 1 30 config-keys
expect_rc 0
for key in "[distill]" "teacher " "temperature " "alpha " "cache " "[init]" "from " "freeze " "reset_head " \
           "class_subset " "train_limit "; do
  expect_out "$key"
done

# A teacher, and its checksum as inspect prints it.
run 2 120 train --config "$cfg" --run-dir "$WORK/teacher" --set train.max_steps=60 --set 'model.layers=[784, 32, 10]' \
  "${quiet[@]}"
expect_rc 0 "teacher"
teacher=$WORK/teacher/checkpoints/step-000000060.h5
tsum=$("$LOCKSTEP" inspect "$teacher" | awk '/parameters, checksum/ {print $NF}')
[ -n "$tsum" ] || fail "no checksum in inspect output"

student=(--config "$cfg" --set 'model.layers=[784, 16, 10]' "${quiet[@]}")
run 2 120 distill --teacher "$teacher" "${student[@]}" --run-dir "$WORK/student" --set train.max_steps=30 \
  --set checkpoint.every_steps=15 --cache-teacher
expect_rc 0 "distill with --cache-teacher"
cache=$WORK/student/teacher-logits.h5
expect_out "teacher logits: 60000 samples computed on 2 rank(s)"
expect_out "distilling from $teacher (784-32-10 relu, checksum $tsum), T 4, alpha 0.9, teacher logits from $cache"
expect_out "done: 30 steps"
grep -qF "another validation split" <<<"$OUT" && fail "a note on the split with the teacher's own seed: $OUT"
h5dump -A "$cache" >"$WORK/cache.txt" || fail "h5dump cannot read the cache"
grep -qF '"lockstep-teacher-logits"' "$WORK/cache.txt" || fail "the cache lacks kind = lockstep-teacher-logits"
grep -qF "\"$tsum\"" "$WORK/cache.txt" || fail "the cache does not record the teacher's checksum $tsum"
h5dump -d /features -H "$cache" | grep -q "SIMPLE { ( 60000, 10 ) / ( 60000, 10 ) }" || fail "/features should be [60000, 10]"

ck=$WORK/student/checkpoints/step-000000030.h5
run 1 30 inspect "$ck"
expect_rc 0
expect_out "distilled from teacher $teacher (784-32-10 relu, checksum $tsum)"
h5dump -a /provenance/distill_teacher_checksum "$ck" | grep -qF "\"$tsum\"" || fail "the checkpoint lacks the teacher checksum"

# A resume reuses the cache (no second computation) and continues.
run 2 120 distill --teacher "$teacher" "${student[@]}" --run-dir "$WORK/student" --resume auto --cache-teacher \
  --set train.max_steps=40
expect_rc 0 "resume"
expect_out "resuming from $ck: epoch 1, step 30"
grep -qF "samples computed" <<<"$OUT" && fail "the cache was computed again on resume"
expect_out "done: 40 steps"

# A student with another seed validates on rows the teacher trained on: said once, at start.
run 2 120 distill --teacher "$teacher" "${student[@]}" --run-dir "$WORK/other-split" --set train.max_steps=2 \
  --set run.seed=7 --set distill.cache="$cache"
expect_rc 0 "another split"
expect_out "note: the teacher trained on this file with another validation split (run.seed 42, data.val_size 5000; the student has 7, 5000)"

# Refusals, before training and with nothing overwritten.
run 2 120 train --config "$cfg" --run-dir "$WORK/teacher2" --set train.max_steps=20 --set 'model.layers=[784, 32, 10]' \
  "${quiet[@]}"
expect_rc 0 "second teacher"
teacher2=$WORK/teacher2/checkpoints/step-000000020.h5
before=$(sha256sum "$WORK"/student/checkpoints/*.h5 "$cache")
run 2 60 distill --teacher "$teacher2" "${student[@]}" --run-dir "$WORK/student" --resume auto --set train.max_steps=50
expect_rc 2 "resume with another teacher"
expect_err_once "cannot resume: the checkpoint was distilled from a teacher with checksum $tsum"
run 2 60 distill --teacher "$teacher2" "${student[@]}" --run-dir "$WORK/other" --set distill.cache="$cache" \
  --set train.max_steps=5
expect_rc 2 "cache of another teacher"
expect_err_once "made from the teacher $teacher (checksum $tsum)"
[ "$(sha256sum "$WORK"/student/checkpoints/*.h5 "$cache")" = "$before" ] || fail "a refused run changed files"
run 2 60 distill --config "$cfg" --run-dir "$WORK/none"
expect_rc 2 "no teacher"
expect_err_once "lockstep distill needs a teacher"

# Inference throughput of a checkpoint.
run 1 60 eval --checkpoint "$WORK/student/checkpoints" --time-inference 0.2
expect_rc 0 "eval --time-inference"
grep -qE "^inference: [0-9]+ samples/s per rank in the fastest of 5 windows \(mean over all [0-9]+; batch 1000, 1 rank" <<<"$OUT" || fail "no inference line: $OUT"

# Transfer: a base model on classes 0-4, then classes 5-9 from 1,000 samples with the body frozen.
model=(--set 'model.layers=[784, 32, 16, 5]')
run 2 120 train --config "$cfg" --run-dir "$WORK/base" "${model[@]}" --set 'data.class_subset=[0, 1, 2, 3, 4]' \
  --set train.max_steps=40 "${quiet[@]}"
expect_rc 0 "base model"
base=$WORK/base/checkpoints/step-000000040.h5
ft=(--config "$cfg" "${model[@]}" --set 'data.class_subset=[5, 6, 7, 8, 9]' --set data.train_limit=1000
    --set data.val_size=0 --set init.from="$base" "${quiet[@]}")
run 2 120 train "${ft[@]}" --run-dir "$WORK/ft" --set init.reset_head=true --set 'init.freeze=[0, 1]' --set train.epochs=2
expect_rc 0 "fine-tune"
expect_out "data: 1000 train, 0 validation, 5000 test samples"
expect_out "initialised from $base (output layer re-initialised); 85 of 25733 parameters train, frozen layers 0 1"
expect_out "2 epochs of 8 steps"
tuned=$WORK/ft/checkpoints/$(cat "$WORK/ft/checkpoints/latest")
for layer in 0 1; do
  for part in weight bias; do
    h5dump -d "/model/layer_$layer/$part" -b LE -o "$WORK/a.bin" "$base" >/dev/null
    h5dump -d "/model/layer_$layer/$part" -b LE -o "$WORK/b.bin" "$tuned" >/dev/null
    cmp -s "$WORK/a.bin" "$WORK/b.bin" || fail "frozen layer $layer $part changed in the fine-tune"
  done
done
h5dump -d /model/layer_2/weight -b LE -o "$WORK/a.bin" "$base" >/dev/null
h5dump -d /model/layer_2/weight -b LE -o "$WORK/b.bin" "$tuned" >/dev/null
cmp -s "$WORK/a.bin" "$WORK/b.bin" && fail "the head was not re-initialised and trained"
h5dump -d /optimizer/exp_avg -H "$tuned" | grep -q "SIMPLE { ( 85 ) / ( 85 ) }" \
  || fail "the optimizer state should cover the 85 head parameters only"
run 1 30 inspect "$tuned"
expect_out "layer 0: weight [32, 784], bias [32], relu (25120 parameters), frozen"
expect_out "layer 2: weight [5, 16], bias [5], linear (85 parameters)"
expect_out "initialised from $base"

# Layers that differ, without reset_head: one message listing them, exit 2, before training.
run 2 60 train "${ft[@]}" --run-dir "$WORK/bad" --set 'model.layers=[784, 32, 16, 3]' --set 'data.class_subset=[5, 6, 7]'
expect_rc 2 "init mismatch"
expect_err_once "the model cannot be initialised from this checkpoint; 1 difference(s):"
expect_err "layer 2: checkpoint weight [5, 16], model weight [3, 16]"
expect_err "init.reset_head = true"
[ ! -e "$WORK/bad/checkpoints" ] || fail "a refused fine-tune wrote checkpoints"
echo "ok"
