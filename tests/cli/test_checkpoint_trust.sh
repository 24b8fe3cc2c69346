#!/usr/bin/env bash
# What a checkpoint is trusted with, end to end on 2 ranks: bytes changed on disk inside an array
# are found by its checksum (exit 2 naming the file and the dataset, the previous checkpoint
# offered, nothing touched); a resume that changes a setting that defines the run (the split,
# the normalisation, the training data behind the same path) is refused listing each difference,
# while epochs, checkpointing and the learning rate may change; eval and inspect name their own
# argument; skipped steps are reported in the epoch lines and the done line.
source "$(dirname "$0")/../robustness/lib.sh"
small_setup "$WORK/base.toml"
# Same shape and labels, other pixels: what a re-converted or replaced file behind the same path is.
make_idx "$D/other-img" u8 64,4,4 "[(i * 7) % 256 for i in range(n * d)]"
cat >>"$WORK/base.toml" <<EOF
[train]
epochs = 2
batch_size = 12
progress = false
[checkpoint]
every_steps = 3
keep = 100
EOF
cfg=(--config "$WORK/base.toml")
R=$WORK/r
ck=$R/checkpoints
run 2 60 train "${cfg[@]}" -o "$R"
expect_rc 0
[ "$(cat "$ck/latest")" = "step-000000010.h5" ] || fail "latest should be step 10: $(cat "$ck/latest")"
run 1 30 inspect "$ck"
expect_rc 0
expect_out "stored checksums: 12 verified"

# ---- 16 bytes changed inside /optimizer/exp_avg of the latest checkpoint ----------------------------
cp "$ck/step-000000010.h5" "$WORK/good.h5"
offset=$(h5dump -p -H -d /optimizer/exp_avg "$ck/step-000000010.h5" | awk '/OFFSET/ { print $2 }')
size=$(h5dump -p -H -d /optimizer/exp_avg "$ck/step-000000010.h5" | awk '/SIZE/ { print $2; exit }')
[ -n "$offset" ] && [ -n "$size" ] || fail "h5dump does not show where /optimizer/exp_avg lies"
printf 'AAAAAAAAAAAAAAAA' | dd of="$ck/step-000000010.h5" bs=1 seek=$((offset + size / 2)) conv=notrunc status=none
digest=$(dir_digest "$R")
run 2 60 train "${cfg[@]}" -o "$R" --resume auto --set train.epochs=3
expect_rc 2 "corrupted array"
expect_err_once "checkpoint $ck/step-000000010.h5: dataset /optimizer/exp_avg: checksum mismatch (stored "
expect_err "the file is damaged"
expect_err "the previous checkpoint $ck/step-000000009.h5 reads fine: resume from it with --resume $ck/step-000000009.h5"
[ "$(dir_digest "$R")" = "$digest" ] || fail "a refused resume changed the run directory"
# eval and inspect: the same finding, their own argument in the hint.
run 2 60 eval --checkpoint "$ck"
expect_rc 2
expect_err "dataset /optimizer/exp_avg: checksum mismatch"
expect_err "reads fine: evaluate it with --checkpoint $ck/step-000000009.h5"
grep -qF -- "--resume" <<<"$ERR" && fail "eval's message names --resume: $ERR"
run 1 30 inspect "$ck/step-000000010.h5"
expect_rc 2
expect_err "reads fine: inspect it with lockstep inspect $ck/step-000000009.h5"
run 2 30 eval --checkpoint "$WORK/nonexistent.h5"
expect_rc 2
expect_err_once "--checkpoint $WORK/nonexistent.h5: no such file or directory"
cp "$WORK/good.h5" "$ck/step-000000010.h5"

# ---- a resume that changes what defines the run is refused, listing each difference -----------------
digest=$(dir_digest "$R")
run 2 60 train "${cfg[@]}" -o "$R" --resume auto --set train.epochs=3 --set data.val_size=4 --set data.normalize=standardize
expect_rc 2 "other split and normalisation"
expect_err_once "cannot resume from $ck/step-000000010.h5: settings that define the run differ"
expect_err "  data.val_size: checkpoint has 8, config has 4"
expect_err "  data.normalize: checkpoint has 'scale', config has 'standardize'"
run 2 60 train "${cfg[@]}" -o "$R" --resume auto --set train.epochs=3 --set data.train_images="$D/other-img"
expect_rc 2 "other training data behind the config"
expect_err "  data.train_images: the training data differ (the checkpoint trained on 64 samples with fingerprint "
[ "$(dir_digest "$R")" = "$digest" ] || fail "a refused resume changed the run directory"
# The same data under another path, and settings that may change: accepted.
cp "$D/train-img" "$D/moved-img"
run 2 60 train "${cfg[@]}" -o "$R" --resume auto --set train.epochs=3 --set data.train_images="$D/moved-img" \
  --set optimizer.lr=0.002 --set checkpoint.keep=5 --set checkpoint.every_steps=0
expect_rc 0 "allowed changes"
expect_out "resuming from $ck/step-000000010.h5: epoch 3, step 10"
expect_out "done: 15 steps"

# ---- skipped steps are reported, not only counted in metrics.jsonl -----------------------------------
# lr 1e30: most steps skipped, but the ones let through blow the weights up, and the validation
# loss is NaN: the run stops with exit 5 at the epoch's end instead of finishing "done".
run 2 60 train "${cfg[@]}" -o "$WORK/dead" --set optimizer.lr=1e30 --set train.non_finite=skip --set train.max_steps=5
expect_rc 5 "weights blown up"
expect_err_once "lockstep: error: the validation loss after epoch 1 (step 5) is nan: the weights no longer give finite outputs ("
if grep -q "^done:" <<<"$OUT"; then fail "a blown-up run printed done: $OUT"; fi
# The skipped steps are reported on the epoch line, not only counted in metrics.jsonl.
skipped=$(python3 -c "import json,sys; print(sum(json.loads(l)['skipped_steps'] for l in open(sys.argv[1])))" "$WORK/dead/metrics.jsonl")
[ "$skipped" -ge 1 ] || fail "lr 1e30 skipped no step: $OUT"
expect_out "skipped $skipped step"
echo "ok"
