#!/usr/bin/env bash
# Replays every input a fuzz run saved (build-fuzz/artifacts/TARGET/) through its target, one at a
# time, and says where each one fails: in lockstep's code (a frame under src/ or a property the
# target checks: "finding:"), or inside libhdf5 (the first frame outside the sanitizer runtime,
# libc and the fuzz driver is in libhdf5), or nowhere any more (fixed since it was saved).
# Usage: tests/fuzz/classify.sh TARGET   (after tests/fuzz/run.sh TARGET ... has built it)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${1:?usage: tests/fuzz/classify.sh idx|config|h5_data}
build=${LOCKSTEP_FUZZ_BUILD:-$root/build-fuzz}
bin="$build/tests/fuzz/fuzz_$target"
export OPENBLAS_NUM_THREADS=1
asan=detect_leaks=1
[ "$target" = h5_data ] && asan=detect_leaks=0:allocator_may_return_null=1
export ASAN_OPTIONS=$asan:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
shopt -s nullglob
printf '%-50s %-8s %-9s %s\n' input kind where "first frame"
for f in "$build/artifacts/$target"/*; do
  kind=$(basename "$f" | cut -d- -f1)
  set +e
  log=$("$bin" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1048576 "$f" 2>&1)
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then where=fixed; frame="-"
  elif grep -q "finding:" <<<"$log"; then where=lockstep; frame=$(grep -o "finding: .*" <<<"$log" | head -1 | cut -c1-100)
  else
    # The first stack frame that is neither the sanitizer/fuzzer runtime, libc, an allocator nor
    # the C++ library: the code that did it.
    frame=$(grep -E '^ *#[0-9]+ 0x' <<<"$log" | grep -vE 'sanitizer|__asan|__ubsan|fuzzer::|libc\.so|libc_start|LLVMFuzzerTestOneInput|_start|raise|abort|pthread_kill|operator new|operator delete| in (malloc|calloc|realloc|free) |__interceptor_|memcpy|memmove|memset| in std::' \
            | head -1 | sed -E 's/^ *#[0-9]+ 0x[0-9a-f]+ in //; s/ \(BuildId.*//' | cut -c1-100)
    case "$frame" in
      *libhdf5*|H5*) where=libhdf5 ;;
      *"$root/src/"*|*lockstep::*) where=lockstep ;;
      *) where=unknown ;;
    esac
  fi
  printf '%-50s %-8s %-9s %s\n' "$(basename "$f")" "$kind" "$where" "${frame:--}"
done
