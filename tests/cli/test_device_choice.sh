#!/usr/bin/env bash
# run.device end to end on 2 ranks. Where no GPU is usable (CI: no driver, or a CPU-only build),
# "cuda" ends every rank with exit code 2 and one message giving the reason, and "auto" trains on
# the CPU after one line saying why. Where a GPU is visible, "auto" must pick it and name it.
source "$(dirname "$0")/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
short=(--set train.max_steps=2 --set train.epochs=1 --set train.progress=false --set data.val_size=0)

run 1 30 info
expect_rc 0
expect_out "backends: cpu"
expect_out "GPUs: "

if grep -q "GPUs: none usable" <<<"$OUT"; then
  run 2 60 train --config "$cfg" --run-dir "$WORK/cuda" --set run.device=cuda "${short[@]}"
  expect_rc 2 "run.device=cuda without a GPU"
  expect_err_once 'run.device = "cuda": rank 0'
  expect_err "has no usable GPU"
  [ ! -f "$WORK/cuda/metrics.jsonl" ] || fail "training started without a GPU"

  run 2 120 train --config "$cfg" --run-dir "$WORK/auto" --set run.device=auto "${short[@]}"
  expect_rc 0 "run.device=auto without a GPU"
  n=$(grep -c 'run.device = "auto"' <<<"$OUT" || true)
  [ "$n" -eq 1 ] || fail "expected one fallback line, found $n"$'\n'"stdout: $OUT"
  expect_out "training on the CPU"
  expect_out "2 rank(s) on cpu"
else
  run 1 120 train --config "$cfg" --run-dir "$WORK/auto" --set run.device=auto "${short[@]}"
  expect_rc 0 "run.device=auto with a GPU"
  expect_out "PCI"
  expect_out "rank(s) on cuda"
fi
echo "ok"
