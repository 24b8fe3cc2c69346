# Helpers for the end-to-end tests of the `lockstep` program (sourced by tests/cli/test_*.sh).
# CTest sets LOCKSTEP (the binary), MPIEXEC, MPIEXEC_FLAGS and SOURCE_DIR.
set -euo pipefail
: "${LOCKSTEP:?set by CTest}" "${MPIEXEC:=mpirun}" "${MPIEXEC_FLAGS:=--allow-run-as-root --oversubscribe}"
: "${SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
MPIEXEC_FLAGS=${MPIEXEC_FLAGS//;/ }
export OPENBLAS_NUM_THREADS=1

WORK=$(mktemp -d /tmp/lockstep-cli-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FMNIST=/usr/share/datasets/fashion-mnist

fail() { echo "FAIL: $*" >&2; exit 1; }

# run NP TIMEOUT ARGS...: runs lockstep on NP ranks; sets RC, OUT, ERR.
run() {
  local np=$1 limit=$2
  shift 2
  set +e
  # shellcheck disable=SC2086
  timeout -k 5 "$limit" "$MPIEXEC" -np "$np" $MPIEXEC_FLAGS "$LOCKSTEP" "$@" >"$WORK/out" 2>"$WORK/err"
  RC=$?
  set -e
  OUT=$(cat "$WORK/out")
  ERR=$(cat "$WORK/err")
}

expect_rc() {
  [ "$RC" -eq "$1" ] || fail "expected exit code $1, got $RC${2:+ ($2)}"$'\n'"stdout: $OUT"$'\n'"stderr: $ERR"
}
expect_err() {
  grep -qF -- "$1" <<<"$ERR" || fail "stderr lacks '$1'"$'\n'"stderr: $ERR"
}
expect_out() {
  grep -qF -- "$1" <<<"$OUT" || fail "stdout lacks '$1'"$'\n'"stdout: $OUT"
}
# The error message appears exactly once, however many ranks saw it.
expect_err_once() {
  local n
  n=$(grep -cF -- "$1" <<<"$ERR" || true)
  [ "$n" -eq 1 ] || fail "expected '$1' once in stderr, found $n times"$'\n'"stderr: $ERR"
}
