#!/usr/bin/env bash
# Ranks that do not agree on what to run (an MPMD launch `mpirun -np 1 A : -np 1 B`, standing for a
# config file that differs between nodes or is edited while a job starts): every rank ends by
# itself within LIMIT seconds with exit code 2, and one message names the ranks and the keys that
# differ with both values. Before, these cases hung in a collective, crashed with a double free or
# a segfault, or trained silently with two sample orders. On 2 and 3 ranks; identical halves train.
# Ranks that read different contents behind the same relative data paths (node-local copies, here
# two working directories) are refused alike, naming the file, the ranks, their hosts and
# fingerprints (train, eval; they used to train silently on two data sets); identical copies train.
source "$(dirname "$0")/lib.sh"
LIMIT=${LOCKSTEP_AGREE_LIMIT:-10}
small_setup "$WORK/a.toml" --no-test
cat >>"$WORK/a.toml" <<EOF
[train]
epochs = 3
batch_size = 12
progress = false
EOF
# The same file as another node might hold it: one key edited.
sed 's/^epochs = 3/epochs = 1/' "$WORK/a.toml" >"$WORK/b.toml"

# mpmd SEGMENT [: SEGMENT ...]: one job of several MPMD segments, each "NP [-wdir DIR] ARGS..." of
# lockstep; every rank records its own exit code and must end by itself (as run_ranks in lib.sh).
mpmd() {
  local cmd=("$MPIEXEC") seg=() extra=() t0 t1
  [ "$OPEN_MPI" = 1 ] && extra=(--mca orte_abort_on_non_zero_status 0)
  # shellcheck disable=SC2206
  cmd+=($MPIEXEC_FLAGS "${extra[@]}")
  flush() {
    local np=${seg[0]} wdir=()
    seg=("${seg[@]:1}")
    if [ "${seg[0]}" = -wdir ]; then
      wdir=(-wdir "${seg[1]}")
      seg=("${seg[@]:2}")
    fi
    cmd+=(-np "$np" "${wdir[@]}" bash "$ROBUST_DIR/rank_exit.sh" "$WORK/ranks" "$LOCKSTEP" "${seg[@]}")
    seg=()
  }
  for a in "$@"; do
    if [ "$a" = ":" ]; then flush; cmd+=(:); else seg+=("$a"); fi
  done
  flush
  rm -rf "$WORK/ranks" && mkdir -p "$WORK/ranks"
  t0=$(date +%s)
  set +e
  timeout -k 5 "$LIMIT" "${cmd[@]}" >"$WORK/out" 2>"$WORK/err"
  RC=$?
  set -e
  t1=$(date +%s)
  OUT=$(cat "$WORK/out")
  ERR=$(cat "$WORK/err")
  [ "$RC" -ne 124 ] && [ "$RC" -ne 137 ] || fail "hang: still running after $LIMIT s: $*"$'\n'"stderr: $ERR"
  echo "  $((t1 - t0)) s: $*" | cut -c1-160
}

train=(train --config "$WORK/a.toml")
cases=0
# refused NP TEXT...: every one of NP ranks exited 2; one error line, containing each TEXT; no run written.
refused() {
  local np=$1 t
  shift
  expect_every_rank "$np" 2
  expect_one_error "$1"
  for t in "$@"; do grep -qF -- "$t" <<<"$ERR" || fail "the error lacks '$t'"$'\n'"stderr: $ERR"; done
  [ ! -e "$WORK/r" ] || fail "a refused start wrote its run directory: $(ls -R "$WORK/r")"
  cases=$((cases + 1))
}

# 2 ranks: one key from --set (the old hang: rank 1 finished after epoch 1, rank 0 waited forever).
mpmd 1 "${train[@]}" -o "$WORK/r" : 1 "${train[@]}" -o "$WORK/r" --set train.epochs=1
refused 2 "the ranks resolved different configs" "  rank 1 differs from rank 0 in:" \
  "    train.epochs: rank 0 has 3, rank 1 has 1"
# The config file itself differs (as between two nodes).
mpmd 1 train --config "$WORK/a.toml" -o "$WORK/r" : 1 train --config "$WORK/b.toml" -o "$WORK/r"
refused 2 "    train.epochs: rank 0 has 3, rank 1 has 1"
# Other layers (was a double free) and another split (was a segfault), listed together.
mpmd 1 "${train[@]}" -o "$WORK/r" : 1 "${train[@]}" -o "$WORK/r" --set 'model.layers=[16, 5, 4]' --set data.val_size=4
refused 2 "    data.val_size: rank 0 has 8, rank 1 has 4" "    model.layers: rank 0 has [16, 8, 4], rank 1 has [16, 5, 4]"
# 3 ranks, the last one differs (was: trained silently with two sample orders).
mpmd 2 "${train[@]}" -o "$WORK/r" : 1 "${train[@]}" -o "$WORK/r" --set run.seed=7
refused 3 "  rank 2 differs from rank 0 in:" "    run.seed: rank 0 has 42, rank 2 has 7"
# 3 ranks, two groups that differ from rank 0 in different keys.
mpmd 1 "${train[@]}" -o "$WORK/r" : 1 "${train[@]}" -o "$WORK/r" --set train.batch_size=24 \
  : 1 "${train[@]}" -o "$WORK/r" --resume auto
refused 3 "  rank 1 differs from rank 0 in:" "    train.batch_size: rank 0 has 12, rank 1 has 24" \
  "  rank 2 differs from rank 0 in:" "    --resume: rank 0 has , rank 2 has auto"
# Another command on one rank (was a hang: train's collectives against eval's).
mpmd 1 "${train[@]}" -o "$WORK/r" : 1 eval --checkpoint "$WORK/none.h5"
refused 2 "the ranks were not started with the same command line: rank 0 runs \`train\`, rank 1 runs \`eval\`"
mpmd 2 "${train[@]}" -o "$WORK/r" : 1 inspect "$WORK/none.h5"
refused 3 "ranks 0, 1 run \`train\`, rank 2 runs \`inspect\`"
# A command line that does not parse on one rank only: that rank says why.
mpmd 1 "${train[@]}" -o "$WORK/r" : 1 train --bogus-flag
refused 2 "rank 1 could not parse theirs (The following argument was not expected: --bogus-flag), while rank 0 runs \`train\`"

# The same arguments in MPMD form agree and train, on 2 and 3 ranks.
mpmd 1 "${train[@]}" -o "$WORK/ok2" : 1 "${train[@]}" -o "$WORK/ok2"
expect_every_rank 2 0
grep -qF "2 rank(s) on cpu" <<<"$OUT" || fail "the agreeing 2-rank job did not train: $OUT"
mpmd 1 "${train[@]}" -o "$WORK/ok3" : 2 "${train[@]}" -o "$WORK/ok3"
expect_every_rank 3 0
grep -qF "done: 15 steps" <<<"$OUT" || fail "the agreeing 3-rank job did not finish: $OUT"

# Data: the same relative paths, other contents. wa and wb hold the HDF5 training file, wb's with
# one label changed; wc's IDX test labels differ in one label too.
for w in wa wb wc; do
  mkdir -p "$WORK/$w"
  make_h5 "$WORK/$w/tr.h5" 64 16 "[random.random() for _ in range(n * d)]" \
    "[$([ $w = wb ] && echo '3 if i == 5 else ') i % 4 for i in range(n)]"
  make_idx "$WORK/$w/t-img" u8 16,4,4 "[random.randrange(256) for _ in range(n * d)]"
  make_idx "$WORK/$w/t-lab" u8 16 "[$([ $w = wc ] && echo '0 if i == 3 else ') i % 4 for i in range(n)]"
done
cmp -s "$WORK/wa/tr.h5" "$WORK/wb/tr.h5" && fail "the two training files are equal"
data=("${train[@]}" --set data.train_images=tr.h5 --set data.train_labels=)
mpmd 1 -wdir "$WORK/wa" "${data[@]}" -o "$WORK/r" : 1 -wdir "$WORK/wb" "${data[@]}" -o "$WORK/r"
refused 2 "the ranks read different data:" \
  "  data.train_images = tr.h5: no majority among the 2 ranks: rank 0 (host $(hostname)) reads 64 samples with fingerprint " \
  ", rank 1 (host $(hostname)) reads 64 samples with fingerprint "
grep -qF "data.test_images" <<<"$ERR" && fail "the test set (none) is named: $ERR"
fp=$(grep -o "fingerprint [0-9a-f]*" <<<"$ERR" | sort -u | wc -l)
[ "$fp" -eq 2 ] || fail "expected two fingerprints in the message, found $fp: $ERR"
# 3 ranks, the last one's test labels differ: named against the other two.
test_set=(--set data.test_images=t-img --set data.test_labels=t-lab)
mpmd 2 -wdir "$WORK/wa" "${data[@]}" "${test_set[@]}" -o "$WORK/r" : 1 -wdir "$WORK/wc" "${data[@]}" "${test_set[@]}" -o "$WORK/r"
refused 3 "  data.test_images = t-img, data.test_labels = t-lab: rank 2 differs from the other 2 ranks: ranks 0, 1 (host " \
  "rank 2 (host $(hostname)) reads 16 samples with fingerprint "
grep -qF "data.train_images" <<<"$ERR" && fail "the training file agrees, yet it is named: $ERR"
# Identical copies in two working directories train; eval on copies that differ is refused too.
mpmd 1 -wdir "$WORK/wa" "${data[@]}" -o "$WORK/okd" : 1 -wdir "$WORK/wc" "${data[@]}" -o "$WORK/okd"
expect_every_rank 2 0
grep -qF "done: 15 steps" <<<"$OUT" || fail "identical copies did not train: $OUT"
mpmd 1 -wdir "$WORK/wa" eval --checkpoint "$WORK/okd/checkpoints" : 1 -wdir "$WORK/wb" eval --checkpoint "$WORK/okd/checkpoints"
expect_every_rank 2 2
expect_one_error "  data.train_images = tr.h5: no majority among the 2 ranks"
cases=$((cases + 1))
echo "ok ($cases refused cases, each rank within $LIMIT s)"
