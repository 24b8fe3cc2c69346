# Sourced by the benchmark scripts. On a machine shared with other work, BENCH_NICE=-20 raises
# this script's scheduling group (Linux autogroup: plain `nice` does not reach across sessions)
# so the benchmark gets whole cores; every figure still reports the CPU share it got. Needs root
# or CAP_SYS_NICE for negative values; silently skipped where /proc/self/autogroup is missing.
bench_priority() {
  if [ -n "${BENCH_NICE:-}" ] && [ -w /proc/self/autogroup ]; then
    echo "$BENCH_NICE" > /proc/self/autogroup 2>/dev/null &&
      echo "# scheduling: $(cat /proc/self/autogroup) (BENCH_NICE)" >&2
  fi
  return 0
}
