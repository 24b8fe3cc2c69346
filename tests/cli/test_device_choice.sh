#!/usr/bin/env bash
# run.device end to end on 2 ranks, in each of the three builds and machines `lockstep info`
# tells apart: a CPU-only build (-DLOCKSTEP_CUDA=OFF: "GPUs: not used"), a CUDA build without a
# usable GPU (CI: "GPUs: none usable (reason)"), and a CUDA build with a GPU. Without a usable
# GPU, "cuda" ends every rank with exit code 2 and one message giving the reason, and "auto"
# trains on the CPU after one line saying why; with one, "auto" picks it and names it.
source "$(dirname "$0")/lib.sh"
cfg="$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml"
short=(--set train.max_steps=2 --set train.epochs=1 --set train.progress=false --set data.val_size=0)

run 1 30 info
expect_rc 0
backends=$(grep '^backends: ' <<<"$OUT" || true)
gpus=$(grep '^GPUs: ' <<<"$OUT" || true)
case "$backends" in
  "backends: cpu")
    build=cpu
    expect_out "CUDA: not in this build"
    [ "$gpus" = "GPUs: not used (no CUDA backend)" ] || fail "a CPU-only build printed '$gpus'"$'\n'"stdout: $OUT"
    reason="this build has no CUDA backend"
    ;;
  "backends: cpu, cuda")
    build=cuda
    expect_out "CUDA: runtime "
    case "$gpus" in
      "GPUs: none usable ("*) reason="has no usable GPU" ;;
      "GPUs: "[1-9]*" visible") reason="" ;;
      *) fail "a CUDA build printed '$gpus'"$'\n'"stdout: $OUT" ;;
    esac
    ;;
  *) fail "unexpected backends line '$backends'"$'\n'"stdout: $OUT" ;;
esac

if [ -n "$reason" ]; then
  # No usable GPU (either build): cuda is refused before anything is written, auto falls back.
  run 2 60 train --config "$cfg" --run-dir "$WORK/cuda" --set run.device=cuda "${short[@]}"
  expect_rc 2 "run.device=cuda without a usable GPU ($build build)"
  expect_err_once 'run.device = "cuda": rank 0'
  expect_err "has no usable GPU"
  expect_err "$reason"
  expect_err 'use run.device = "cpu" or "auto"'
  [ ! -e "$WORK/cuda" ] || fail "a refused run created its run directory"

  run 2 120 train --config "$cfg" --run-dir "$WORK/auto" --set run.device=auto "${short[@]}"
  expect_rc 0 "run.device=auto without a usable GPU ($build build)"
  n=$(grep -c 'run.device = "auto"' <<<"$OUT" || true)
  [ "$n" -eq 1 ] || fail "expected one fallback line, found $n"$'\n'"stdout: $OUT"
  expect_out "$reason"
  expect_out "training on the CPU"
  expect_out "2 rank(s) on cpu"
else
  run 1 120 train --config "$cfg" --run-dir "$WORK/auto" --set run.device=auto "${short[@]}"
  expect_rc 0 "run.device=auto with a GPU"
  expect_out "PCI"
  expect_out "rank(s) on cuda"
fi
echo "ok ($build build${reason:+, no usable GPU})"
