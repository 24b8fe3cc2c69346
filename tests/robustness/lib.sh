# Helpers of the robustness tests (sourced by tests/robustness/test_*.sh, after tests/cli/lib.sh):
# small data files written with python3's standard library and h5import, runs whose every rank
# reports its own exit code, checksums of a directory, and the pids of a job's ranks.
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
ROBUST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OPEN_MPI=0
if "$MPIEXEC" --version 2>&1 | grep -qE "Open MPI|OpenRTE"; then OPEN_MPI=1; fi

# make_idx PATH TYPE DIMS VALUES [gzip]: an IDX file. TYPE is u8, i32 or f32; DIMS "n,rows,cols";
# VALUES a Python expression for the flat list of values (may use n, d, i), e.g. "[i % 4 for i in range(n)]".
make_idx() {
  python3 - "$@" <<'PY'
import gzip, random, struct, sys
path, kind, dims, values = sys.argv[1:5]
dims = [int(x) for x in dims.split(",")]
n = dims[0]
d = 1
for x in dims[1:]:
    d *= x
random.seed(n * 1000 + d)
vals = eval(values, {"n": n, "d": d, "random": random, "range": range, "float": float})
code, fmt = {"u8": (0x08, "B"), "i32": (0x0C, "i"), "f32": (0x0D, "f")}[kind]
data = bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", x) for x in dims)
data += struct.pack(">%d%s" % (len(vals), fmt), *vals)
if len(sys.argv) > 5 and sys.argv[5] == "gzip":
    data = gzip.compress(data, mtime=0)
open(path, "wb").write(data)
PY
}

# small_setup FILE [--gzip] [--no-test]: the small data set most end-to-end tests train on, in
# D=$WORK/data (64 training samples of 4x4 pixels in 4 classes; 20 test samples unless --no-test;
# --gzip: the training files gzip-compressed and named *.gz), and FILE holding the [data] and
# [model] sections of a run on it (8 validation samples, a 16-8-4 MLP). Callers append [train]
# and whatever else they need.
small_setup() {
  local file=$1 ext="" z="" with_test=1 test_img="" test_lab=""
  shift
  for opt; do
    case $opt in
      --gzip) ext=.gz z=gzip ;;
      --no-test) with_test=0 ;;
      *) fail "small_setup: unknown option $opt" ;;
    esac
  done
  D=$WORK/data
  mkdir -p "$D"
  make_idx "$D/train-img$ext" u8 64,4,4 "[random.randrange(256) for _ in range(n * d)]" ${z:+"$z"}
  make_idx "$D/train-lab$ext" u8 64 "[i % 4 for i in range(n)]" ${z:+"$z"}
  if [ "$with_test" = 1 ]; then
    test_img=$D/test-img test_lab=$D/test-lab
    make_idx "$test_img" u8 20,4,4 "[random.randrange(256) for _ in range(n * d)]"
    make_idx "$test_lab" u8 20 "[(i * 3) % 4 for i in range(n)]"
  fi
  cat >"$file" <<EOT
[data]
train_images = "$D/train-img$ext"
train_labels = "$D/train-lab$ext"
test_images = "$test_img"
test_labels = "$test_lab"
classes = 4
val_size = 8
[model]
layers = [16, 8, 4]
EOT
}

# make_h5 PATH N D FEATURES LABELS [nolabels]: an HDF5 data file with /features float32 (N, D) and
# /labels int32 (N), written by h5import; FEATURES and LABELS are Python expressions as for make_idx.
# LABEL_TYPE=u64 makes the labels uint64.
make_h5() {
  local path=$1 n=$2 d=$3 features=$4 labels=$5 tmp
  tmp=$(mktemp -d "$WORK/h5-XXXXXX")
  python3 - "$tmp" "$n" "$d" "$features" "$labels" "${LABEL_TYPE:-i32}" <<'PY'
import random, struct, sys
tmp, n, d, features, labels, ltype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
random.seed(n * 1000 + d)
env = {"n": n, "d": d, "random": random, "range": range, "float": float}
x = eval(features, env)
y = eval(labels, env)
open(tmp + "/features.bin", "wb").write(struct.pack("<%df" % len(x), *x))
open(tmp + "/labels.bin", "wb").write(struct.pack("<%d%s" % (len(y), "Q" if ltype == "u64" else "i"), *y))
PY
  printf 'PATH features\nINPUT-CLASS FP\nINPUT-SIZE 32\nINPUT-BYTE-ORDER LE\nRANK 2\nDIMENSION-SIZES %s %s\nOUTPUT-CLASS FP\nOUTPUT-SIZE 32\nOUTPUT-ARCHITECTURE IEEE\nOUTPUT-BYTE-ORDER LE\n' \
    "$n" "$d" >"$tmp/features.cfg"
  local lc=IN ls=32
  [ "${LABEL_TYPE:-i32}" = u64 ] && lc=UIN ls=64
  printf 'PATH labels\nINPUT-CLASS %s\nINPUT-SIZE %s\nINPUT-BYTE-ORDER LE\nRANK 1\nDIMENSION-SIZES %s\nOUTPUT-CLASS %s\nOUTPUT-SIZE %s\nOUTPUT-ARCHITECTURE STD\nOUTPUT-BYTE-ORDER LE\n' \
    "$lc" "$ls" "$n" "$lc" "$ls" >"$tmp/labels.cfg"
  if [ "${6:-}" = nolabels ]; then
    h5import "$tmp/features.bin" -c "$tmp/features.cfg" -o "$path" >/dev/null
  else
    h5import "$tmp/features.bin" -c "$tmp/features.cfg" "$tmp/labels.bin" -c "$tmp/labels.cfg" -o "$path" >/dev/null
  fi
  rm -rf "$tmp"
}

# run_ranks NP LIMIT ARGS...: like run (tests/cli/lib.sh), but each rank writes its own exit code
# to $WORK/ranks/rank.R, and (Open MPI) mpirun does not end the other ranks when one exits with
# an error: every rank must end by itself. RC is mpirun's status (124/137: the time limit; with
# Open MPI in this mode it is 0 whatever the ranks return, so check the ranks' own codes).
# Also sets SECONDS_TAKEN (wall time of the job).
run_ranks() {
  local np=$1 limit=$2 extra=()
  shift 2
  rm -rf "$WORK/ranks" && mkdir -p "$WORK/ranks"
  [ "$OPEN_MPI" = 1 ] && extra=(--mca orte_abort_on_non_zero_status 0)
  local t0 t1
  t0=$(date +%s%N)
  set +e
  # shellcheck disable=SC2086
  timeout -k 5 "$limit" "$MPIEXEC" -np "$np" $MPIEXEC_FLAGS "${extra[@]}" bash "$ROBUST_DIR/rank_exit.sh" \
    "$WORK/ranks" "$LOCKSTEP" "$@" >"$WORK/out" 2>"$WORK/err"
  RC=$?
  set -e
  t1=$(date +%s%N)
  SECONDS_TAKEN=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  OUT=$(cat "$WORK/out")
  ERR=$(cat "$WORK/err")
}

# expect_every_rank NP CODE: each of the NP ranks ended with CODE.
expect_every_rank() {
  local np=$1 code=$2 r got
  for r in $(seq 0 $((np - 1))); do
    [ -f "$WORK/ranks/rank.$r" ] || fail "rank $r did not report an exit code (killed?)"$'\n'"stderr: $ERR"
    got=$(cat "$WORK/ranks/rank.$r")
    [ "$got" -eq "$code" ] || fail "rank $r exited with $got, expected $code"$'\n'"stderr: $ERR"
  done
}

# expect_one_error TEXT: stderr holds exactly one lockstep error, and it contains TEXT.
expect_one_error() {
  local n
  n=$(grep -c "^lockstep: error" <<<"$ERR" || true)
  [ "$n" -eq 1 ] || fail "expected one 'lockstep: error' line, found $n"$'\n'"stderr: $ERR"
  grep -qF -- "$1" <<<"$ERR" || fail "the error lacks '$1'"$'\n'"stderr: $ERR"
  if grep -q "HDF5-DIAG" <<<"$ERR"; then fail "HDF5 printed its own error stack"$'\n'"stderr: $ERR"; fi
}

# dir_digest DIR: one line per file below DIR (path, size, sha256), sorted. The run-directory lock
# file is left out: every start takes the lock and records itself there (run_dir.hpp), a rejected
# one included; it holds no part of the run.
dir_digest() {
  (cd "$1" && find . -type f ! -name lockstep.lock -print0 | sort -z | xargs -0 -r sha256sum)
}

# rank_pids MPIRUN_PID: the pids of the job's ranks, in rank order (Open MPI on this node).
rank_pids() {
  local parent=$1 p r
  for p in $(pgrep -P "$parent"); do
    r=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
    [ -n "$r" ] && echo "$r $p"
  done | sort -n | awk '{ print $2 }'
}

# alive PID: the process exists and is not a zombie (a dead child not yet reaped by its new parent).
alive() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ "$st" != Z* ]]
}

# wait_for FILE SECONDS: waits until FILE exists; fails after SECONDS.
wait_for() {
  local i
  for i in $(seq 1 $(($2 * 10))); do
    [ -e "$1" ] && return 0
    sleep 0.1
  done
  fail "$1 did not appear within $2 s"
}

# checksum_of CKPT: the weight checksum `lockstep inspect` reports.
checksum_of() {
  run 1 30 inspect "$1"
  expect_rc 0 "inspect $1"
  grep -o "checksum [0-9a-f]*" <<<"$OUT"
}
