#!/usr/bin/env bash
# Builds the libFuzzer targets into build-fuzz/ (clang, -fsanitize=fuzzer,address,undefined) and
# runs one for a bounded time. Not part of CTest or tests/run.sh.
# Usage: tests/fuzz/run.sh TARGET SECONDS [libFuzzer options...]
#   TARGET: idx, config or h5_data. The seed corpus is tests/fuzz/corpus/TARGET (read only);
#   inputs found are kept in build-fuzz/corpus/TARGET, crashes in build-fuzz/artifacts/TARGET/,
#   the log in build-fuzz/TARGET.log. LOCKSTEP_FUZZ_KEEP_GOING=1 runs in fork mode past crashes,
#   timeouts and out-of-memory inputs (used for h5_data, where libhdf5 itself crashes).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${1:?usage: tests/fuzz/run.sh idx|config|h5_data SECONDS [libFuzzer options]}
seconds=${2:?usage: tests/fuzz/run.sh TARGET SECONDS}
shift 2
case "$target" in idx|config|h5_data) ;; *) echo "run.sh: unknown target '$target'" >&2; exit 2 ;; esac
build=${LOCKSTEP_FUZZ_BUILD:-$root/build-fuzz}

"$root/scripts/install-deps.sh" --with-fuzz
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOCKSTEP_CUDA=OFF -DLOCKSTEP_NATIVE=OFF \
  -DLOCKSTEP_BUILD_TESTS=OFF -DLOCKSTEP_BUILD_BENCH=OFF -DLOCKSTEP_BUILD_FUZZ=ON \
  -DCMAKE_C_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
  >/dev/null
cmake --build "$build" --target "fuzz_$target" -j"$(nproc)"

corpus="$build/corpus/$target"
artifacts="$build/artifacts/$target/"
mkdir -p "$corpus" "$artifacts"
opts=(-max_total_time="$seconds" -artifact_prefix="$artifacts" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
case "$target" in
  idx) opts+=(-max_len=65536) ;;
  config) opts+=(-max_len=8192 -dict="$root/tests/fuzz/config.dict") ;;
  h5_data) opts+=(-max_len=32768) ;;
esac
if [ "${LOCKSTEP_FUZZ_KEEP_GOING:-0}" = 1 ]; then
  opts+=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
fi
# One BLAS thread: the library links OpenBLAS, which would otherwise start a thread per core.
export OPENBLAS_NUM_THREADS=1
# Leaks are findings, but libhdf5 1.10 leaks internally on some malformed files: fuzz_h5_data runs
# without LeakSanitizer and checks instead that every HDF5 identifier lockstep opened is closed.
# Likewise a malformed file can make libhdf5 ask for an absurd allocation (e.g. 2^51 bytes in its
# metadata cache): in production malloc fails and HDF5 reports an error, so here malloc returns
# NULL as well rather than counting as a finding.
asan=detect_leaks=1
if [ "$target" = h5_data ]; then
  asan=detect_leaks=0:allocator_may_return_null=1
  opts+=(-malloc_limit_mb=1048576)
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-$asan:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
set +e
"$build/tests/fuzz/fuzz_$target" "${opts[@]}" "$@" "$corpus" "$root/tests/fuzz/corpus/$target" 2>&1 | tee "$build/$target.log"
rc=${PIPESTATUS[0]}
set -e
echo "run.sh: fuzz_$target exited with $rc; corpus $(ls "$corpus" | wc -l) inputs; artifacts: $(ls "$artifacts" | wc -l)"
exit "$rc"
