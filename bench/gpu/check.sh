#!/usr/bin/env bash
# The GPU check of lockstep, for a machine with one or more NVIDIA GPUs (see README.md beside it):
# builds with the CUDA backend, runs the cuda-labelled tests, trains the default Fashion-MNIST MLP
# for one epoch on one GPU, compares the first 50 steps' losses with the CPU backend, times a small
# and a large MLP, and prints a summary table last. Exits 0 only when every check passed.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
# Dependencies carried to a machine without a package registry (bench/gpu/deps.sh fetch, then
# .gpu-deps in the device call's carry): unpacked into a prefix of their own when the machine
# has no MPI or HDF5 compiler wrappers of its own, and no LOCKSTEP_DEPS_PREFIX was given.
if [ -z "${LOCKSTEP_DEPS_PREFIX:-}" ] && [ -d "$root/.gpu-deps/debs" ] &&
   ! { command -v mpicc && command -v h5cc; } >/dev/null 2>&1; then
  echo "no mpicc or h5cc here: unpacking the carried dependencies in $root/.gpu-deps"
  deps_env=$("$root/bench/gpu/deps.sh" unpack) && eval "$deps_env"
fi
if [ -z "${FASHION_MNIST_DIR:-}" ] && [ ! -d /usr/share/datasets/fashion-mnist ] && [ -d "$root/.gpu-deps/fashion-mnist" ]; then
  FASHION_MNIST_DIR=$root/.gpu-deps/fashion-mnist
fi
BUILD_DIR=${BUILD_DIR:-$root/build-gpu}
DATA_DIR=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
JOBS=${JOBS:-$(nproc)}
LOSS_STEPS=50
LOSS_RTOL=1e-4
WORK=$(mktemp -d /tmp/lockstep-gpu-check-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Prebuilt or unpacked dependencies (MPI, HDF5, OpenBLAS, GTest, CLI11, toml++, nlohmann-json),
# one or more prefixes separated by ':'.
if [ -n "${LOCKSTEP_DEPS_PREFIX:-}" ]; then
  IFS=: read -ra prefixes <<<"$LOCKSTEP_DEPS_PREFIX"
  for p in "${prefixes[@]}"; do
    CMAKE_PREFIX_PATH="$p${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    PKG_CONFIG_PATH="$p/lib/pkgconfig:$p/lib/x86_64-linux-gnu/pkgconfig:$p/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    LD_LIBRARY_PATH="$p/lib:$p/lib64:$p/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    PATH="$p/bin:$PATH"
  done
  export CMAKE_PREFIX_PATH PKG_CONFIG_PATH
fi
export PATH="$CUDA_HOME/bin:$PATH"
export LD_LIBRARY_PATH="$CUDA_HOME/lib64:$CUDA_HOME/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Optional launcher for the lockstep program (Open MPI singletons need no mpirun), e.g.
# LOCKSTEP_LAUNCH="mpirun -np 1 --allow-run-as-root".
read -ra LAUNCH <<<"${LOCKSTEP_LAUNCH:-}"

summary=()   # "check|result|seconds|detail"
failed=0
record() {  # record NAME RESULT SECONDS DETAIL
  summary+=("$1|$2|$3|$4")
  [ "$2" = PASS ] || failed=1
  printf '\n== %s: %s (%ss) %s\n' "$1" "$2" "$3" "$4"
}
now() { date +%s; }
# Every phase's time limit is cut to what is left of the whole check's budget (8 minutes).
DEADLINE=$(($(now) + ${CHECK_BUDGET_S:-470}))
cap() {
  local left=$((DEADLINE - $(now)))
  [ $left -lt 10 ] && left=10
  echo $(($1 < left ? $1 : left))
}
banner() { printf '\n======== %s ========\n' "$1"; }

# --- 1. GPUs ------------------------------------------------------------------------------------
banner "GPUs"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total,driver_version --format=csv,noheader || true
else
  echo "nvidia-smi not found; lockstep info below says what the CUDA runtime sees"
fi

# --- 2. Build -----------------------------------------------------------------------------------
banner "build ($BUILD_DIR)"
t0=$(now)
cmake_args=(-S "$root" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLOCKSTEP_CUDA=ON)
[ -n "${CUDA_ARCHS:-}" ] && cmake_args+=("-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHS")
have_tests=1
if ! timeout "$(cap 120)" cmake "${cmake_args[@]}" >"$WORK/configure.log" 2>&1; then
  if grep -q "GTest" "$WORK/configure.log"; then
    echo "GoogleTest not found: building without the test suite"
    have_tests=0
    timeout "$(cap 120)" cmake "${cmake_args[@]}" -DLOCKSTEP_BUILD_TESTS=OFF >"$WORK/configure.log" 2>&1
  fi
fi
if grep -q "CUDA backend ON" "$WORK/configure.log" && timeout "$(cap 300)" cmake --build "$BUILD_DIR" -j"$JOBS" >"$WORK/build.log" 2>&1; then
  record build PASS $(($(now) - t0)) "$(grep -o 'CUDA backend ON.*' "$WORK/configure.log" | head -1)"
else
  tail -40 "$WORK/configure.log" "$WORK/build.log" 2>/dev/null
  record build FAIL $(($(now) - t0)) "configure or build failed (log above)"
fi
LOCKSTEP=$BUILD_DIR/lockstep
HELPER=$BUILD_DIR/bench/gpu/lockstep_gpu_check

if [ -x "$LOCKSTEP" ]; then
  banner "lockstep info"
  timeout 60 "${LAUNCH[@]}" "$LOCKSTEP" info
fi

# --- 3. CUDA tests ------------------------------------------------------------------------------
banner "ctest -L cuda"
t0=$(now)
if [ "$have_tests" = 1 ] && [ -x "$LOCKSTEP" ]; then
  (cd "$BUILD_DIR" && timeout "$(cap 180)" ctest -L cuda --output-on-failure -j2) >"$WORK/ctest.log" 2>&1
  rc=$?
  cat "$WORK/ctest.log"
  line=$(grep -E "tests passed|tests failed" "$WORK/ctest.log" | tail -1)
  skipped=$(grep -c "Skipped" "$WORK/ctest.log")
  if [ $rc -eq 0 ] && [ "$skipped" -eq 0 ]; then
    record "cuda tests" PASS $(($(now) - t0)) "$line"
  else
    record "cuda tests" FAIL $(($(now) - t0)) "$line; $skipped skipped (exit $rc)"
  fi
else
  record "cuda tests" FAIL $(($(now) - t0)) "not built (GoogleTest missing or build failed)"
fi

# --- 4. One epoch of the default model on one GPU -----------------------------------------------
cfg=$root/jobs/configs/fashion_mnist_mlp.toml
data_sets=(--set "data.train_images=$DATA_DIR/train-images-idx3-ubyte.gz"
           --set "data.train_labels=$DATA_DIR/train-labels-idx1-ubyte.gz"
           --set "data.test_images=$DATA_DIR/t10k-images-idx3-ubyte.gz"
           --set "data.test_labels=$DATA_DIR/t10k-labels-idx1-ubyte.gz")
have_data=1
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [ -f "$DATA_DIR/$f" ] || have_data=0
done
banner "train one epoch on one GPU"
t0=$(now)
if [ $have_data = 0 ]; then
  record "train 1 epoch" FAIL 0 "Fashion-MNIST not found in $DATA_DIR (set FASHION_MNIST_DIR)"
elif [ -x "$LOCKSTEP" ]; then
  CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0} timeout "$(cap 150)" "${LAUNCH[@]}" "$LOCKSTEP" train --config "$cfg" \
    --run-dir "$WORK/run" --set run.device=cuda --set train.epochs=1 --set train.progress=false "${data_sets[@]}" \
    >"$WORK/train.log" 2>&1
  rc=$?
  cat "$WORK/train.log"
  acc=$(grep -o "final test accuracy: [0-9.]*" "$WORK/train.log" | grep -o "[0-9.]*$")
  if [ $rc -eq 0 ] && [ -n "$acc" ] && grep -q "PCI" "$WORK/train.log"; then
    record "train 1 epoch" PASS $(($(now) - t0)) "test accuracy $acc"
  else
    record "train 1 epoch" FAIL $(($(now) - t0)) "exit $rc"
  fi
else
  record "train 1 epoch" FAIL 0 "lockstep not built"
fi

# --- 5. First 50 losses: CUDA against CPU -------------------------------------------------------
banner "first $LOSS_STEPS losses, cuda vs cpu"
t0=$(now)
if [ $have_data = 1 ] && [ -x "$HELPER" ]; then
  timeout "$(cap 90)" "$HELPER" losses --config "$cfg" "${data_sets[@]}" --device cpu --steps $LOSS_STEPS >"$WORK/cpu.txt" &&
    timeout "$(cap 90)" "$HELPER" losses --config "$cfg" "${data_sets[@]}" --device cuda --steps $LOSS_STEPS >"$WORK/cuda.txt"
  rc=$?
  paste "$WORK/cpu.txt" "$WORK/cuda.txt" | awk -v rtol=$LOSS_RTOL '
    { d = $4 - $8; if (d < 0) d = -d; r = d / ($4 < 0 ? -$4 : $4); if (r > worst) { worst = r; at = $2 }
      if (r > rtol) bad++; n++; printf "step %3d  cpu %.7f  cuda %.7f  rel %.2e\n", $2, $4, $8, r }
    END { printf "%d steps, %d over %g, worst %.2e at step %s\n", n, bad, rtol, worst, at > "/dev/stderr";
          exit (n == 0 || bad > 0) }' 2>"$WORK/cmp.txt"
  cmp_rc=$?
  cat "$WORK/cmp.txt"
  n=$(wc -l <"$WORK/cuda.txt")
  if [ $rc -eq 0 ] && [ $cmp_rc -eq 0 ] && [ "$n" -eq $LOSS_STEPS ]; then
    record "losses vs cpu" PASS $(($(now) - t0)) "$(cat "$WORK/cmp.txt")"
  else
    record "losses vs cpu" FAIL $(($(now) - t0)) "$(cat "$WORK/cmp.txt") (exit $rc)"
  fi
else
  record "losses vs cpu" FAIL 0 "helper not built or no data"
fi

# --- 6. Throughput ------------------------------------------------------------------------------
banner "throughput"
small=784,256,128,10
large=784,4096,4096,4096,10
tput=()
run_tput() {  # run_tput DEVICE LAYERS BATCH STEPS WARMUP [--tf32]
  local line
  line=$(OPENBLAS_NUM_THREADS=$(nproc) timeout "$(cap 60)" "$HELPER" throughput --device "$1" --layers "$2" --batch "$3" \
         --steps "$4" --warmup "$5" "${@:6}" 2>"$WORK/tput.err")
  if [ -n "$line" ]; then
    echo "$line"
    tput+=("$line")
  else
    cat "$WORK/tput.err"
    tput+=("throughput layers=$2 device=$1 batch=$3 FAILED")
    failed=1
  fi
}
t0=$(now)
if [ -x "$HELPER" ]; then
  run_tput cuda $small 128 300 20
  run_tput cuda $small 1024 200 20
  run_tput cuda $large 1024 50 5
  run_tput cuda $large 1024 50 5 --tf32
  run_tput cpu $small 128 100 5
  run_tput cpu $large 1024 3 1
  record throughput PASS $(($(now) - t0)) "${#tput[@]} runs"
else
  record throughput FAIL 0 "helper not built"
fi

# --- Summary ------------------------------------------------------------------------------------
banner "summary"
printf '%-22s %-8s %-11s %s\n' "model" "device" "batch" "ms/step    samples/s    TFLOP/s"
get() { grep -o "$1=[^ ]*" <<<"$l" | cut -d= -f2; }
for l in "${tput[@]}"; do
  dev=$(get device)
  [ "$(get tf32)" = 1 ] && dev="$dev tf32"
  printf '%-22s %-8s %-11s %-10s %-12s %s\n' "$(get layers)" "$dev" "$(get batch)" "$(get ms_per_step)" \
    "$(get samples_per_s)" "$(get tflops)"
done
echo
printf '%-16s %-6s %6s  %s\n' check result time detail
for row in "${summary[@]}"; do
  IFS='|' read -r name result secs detail <<<"$row"
  printf '%-16s %-6s %5ss  %s\n' "$name" "$result" "$secs" "$detail"
done
exit $failed
