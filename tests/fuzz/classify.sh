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
printf '%-50s %-6s %-9s %-45s %-24s %s\n' input kind where "first frame" "first named HDF5 call" "lockstep caller"
# ARTIFACTS names another folder of saved inputs (default: build-fuzz/artifacts/TARGET).
for f in "${ARTIFACTS:-$build/artifacts/$target}"/*; do
  kind=$(basename "$f" | cut -d- -f1)
  set +e
  log=$("$bin" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1048576 "$f" 2>&1)
  rc=$?
  set -e
  frames=$(grep -E '^ *#[0-9]+ 0x' <<<"$log" | sed -E 's/^ *#[0-9]+ 0x[0-9a-f]+ +(in )?//; s/ \(BuildId.*//' || true)
  h5fn=$(grep -oE '^H5[A-Za-z0-9_]+' <<<"$frames" | head -1 || true)
  caller=$(grep -oE '^lockstep::[A-Za-z0-9_:]+' <<<"$frames" | head -1 || true)
  if [ "$rc" -eq 0 ]; then where=fixed; frame="-"
  elif grep -q "finding:" <<<"$log"; then where=lockstep; frame=$(grep -o "finding: .*" <<<"$log" | head -1 | cut -c1-45)
  else
    # The first stack frame that is neither the sanitizer/fuzzer runtime, libc, an allocator nor
    # the C++ library: the code that did it.
    frame=$(grep -vE 'sanitizer|__asan|__ubsan|fuzzer::|libc\.so|libc_start|LLVMFuzzerTestOneInput|_start|raise|abort|pthread_kill|operator new|operator delete|^(malloc|calloc|realloc|free) |__interceptor_|memcpy|memmove|memset|^std::' \
            <<<"$frames" | head -1 | cut -c1-45 || true)
    case "$frame" in
      *libhdf5*|H5*) where=libhdf5 ;;
      *"$root/src/"*|lockstep::*) where=lockstep ;;
      *) where=unknown ;;
    esac
  fi
  printf '%-50s %-6s %-9s %-45s %-24s %s\n' "$(basename "$f")" "$kind" "$where" "${frame:--}" "${h5fn:--}" "${caller:--}"
done
