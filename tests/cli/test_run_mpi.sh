#!/usr/bin/env bash
# jobs/run-mpi.sh, the workstation launcher: one rank per GPU that nvidia-smi lists (as many as
# CUDA_VISIBLE_DEVICES allows), else one per core; --bind-to core when the ranks fit, none and
# --oversubscribe when they do not; arguments reach lockstep intact; no per-rank
# CUDA_VISIBLE_DEVICES. GPUs are played by stand-in nvidia-smi commands.
source "$(dirname "$0")/lib.sh"
launcher=$SOURCE_DIR/jobs/run-mpi.sh
source "$SOURCE_DIR/scripts/mpi-flags.sh"
cores=$(lockstep_cores)
mkdir -p "$WORK/gpus3" "$WORK/gpus2" "$WORK/broken"
cat >"$WORK/gpus3/nvidia-smi" <<'EOF'
#!/bin/bash
[ "$1" = -L ] || exit 2
echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0a)"
echo "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-1b)"
echo "  MIG 3g.40gb     Device  0: (UUID: MIG-1b-0)"
echo "GPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-2c)"
EOF
head -n 4 "$WORK/gpus3/nvidia-smi" >"$WORK/gpus2/nvidia-smi"
printf '#!/bin/bash\necho "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver."\nexit 9\n' \
  >"$WORK/broken/nvidia-smi"
chmod +x "$WORK"/*/nvidia-smi

# dry NVIDIA_DIR [ARGS...]: the launcher's mpirun line with that stand-in nvidia-smi first on PATH.
dry() {
  local dir=$1
  shift
  PATH="$WORK/$dir:$PATH" "$launcher" --dry-run "$@" train --config x.toml 2>/dev/null | grep '^+ mpirun'
}
expect_line() {  # PATTERN LINE
  [[ "$2" == $1 ]] || fail "expected '$1', got '$2'"
}
unset CUDA_VISIBLE_DEVICES LOCKSTEP_RANKS

expect_line "+ mpirun -np 2 *--bind-to core $LOCKSTEP train --config x.toml" "$(dry gpus2)"
if [ "$cores" -ge 3 ]; then
  expect_line "+ mpirun -np 3 *--bind-to core *" "$(dry gpus3)"
else
  expect_line "+ mpirun -np 3 *--oversubscribe --bind-to none *" "$(dry gpus3)"
fi
expect_line "+ mpirun -np 1 *--bind-to core *" "$(CUDA_VISIBLE_DEVICES=2 dry gpus3)"
expect_line "+ mpirun -np 2 *--bind-to core *" "$(CUDA_VISIBLE_DEVICES=GPU-0a,GPU-2c dry gpus3)"
expect_line "+ mpirun -np $cores *--bind-to core *" "$(CUDA_VISIBLE_DEVICES= dry gpus3)"
expect_line "+ mpirun -np $cores *--bind-to core *" "$(dry broken)"
if ! command -v nvidia-smi >/dev/null; then
  expect_line "+ mpirun -np $cores *--bind-to core *" "$(dry .)"
fi
expect_line "+ mpirun -np $((cores + 1)) *--oversubscribe --bind-to none *" "$(dry broken -n $((cores + 1)))"
expect_line "+ mpirun -np 1 *--bind-to core *" "$(LOCKSTEP_RANKS=1 dry gpus3)"
[[ "$(dry broken)" != *--oversubscribe* ]] || fail "--oversubscribe with one rank per core"
set +e; msg=$("$launcher" -n 0 train 2>&1); rc=$?; set -e
[ "$rc" -eq 2 ] && grep -q "positive integer" <<<"$msg" || fail "-n 0: rc $rc: $msg"
msg=$(PATH="$WORK/gpus2:$PATH" "$launcher" --dry-run -n 4 train 2>&1 >/dev/null)
grep -q "4 ranks but 2 GPU(s): ranks would share a GPU" <<<"$msg" || fail "no warning for 4 ranks on 2 GPUs: $msg"
echo "ok: rank counts and binding"

# The ranks get no CUDA_VISIBLE_DEVICES of their own: a stand-in for lockstep reports it.
printf '#!/bin/bash\necho "rank $OMPI_COMM_WORLD_RANK CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset} $*"\n' >"$WORK/report"
chmod +x "$WORK/report"
out=$(PATH="$WORK/gpus2:$PATH" LOCKSTEP="$WORK/report" timeout 60 "$launcher" info --x 'a b' 2>/dev/null)
[ "$(grep -c '^rank [01] CUDA_VISIBLE_DEVICES=unset info --x a b$' <<<"$out")" -eq 2 ] || fail "ranks saw: $out"
echo "ok: no per-rank CUDA_VISIBLE_DEVICES"

# A real run on 2 ranks; an argument with spaces reaches lockstep as one.
set +e
out=$(timeout 120 "$launcher" -n 2 train --config "$SOURCE_DIR/jobs/configs/fashion_mnist_mlp.toml" \
      --set 'model.layers=[784, 32, 10]' --set train.max_steps=20 --set train.progress=false --run-dir "$WORK/run" 2>&1)
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "run-mpi.sh -n 2 train: rc $rc: $out"
grep -q "784-32-10 relu MLP" <<<"$out" && grep -q "2 rank(s) on cpu" <<<"$out" || fail "$out"
[ -f "$WORK/run/metrics.jsonl" ] || fail "no metrics.jsonl"
echo "ok: run-mpi.sh -n 2 train"
