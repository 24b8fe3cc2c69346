#!/usr/bin/env bash
# The run directory over a run's life: a plain start never writes over a run (metrics or only
# checkpoints); --resume auto without --config continues with the run's stored config and says
# which; a lost, empty or damaged `latest` falls back to the newest step file that reads (or
# refuses, exit 2, when none does) and is never followed out of the directory; a run directory
# with only best.h5 is not restarted over; a finished run says there is nothing left to do; a
# partial epoch is marked in metrics.jsonl; a second job on a locked directory fails at start
# naming the lock and its holder, and a killed holder leaves no stale lock; unwritable
# destinations are refused before training; rotation keeps a user's step-*-keep.h5.
source "$(dirname "$0")/../robustness/lib.sh"
small_setup "$WORK/base.toml"
# 56 training samples in batches of 12: 5 steps per epoch, 15 in all.
cat >>"$WORK/base.toml" <<EOF
[train]
epochs = 3
batch_size = 12
progress = false
[checkpoint]
every_steps = 2
keep = 100
EOF
cfg=(--config "$WORK/base.toml")
R=$WORK/r
ck=$R/checkpoints

# ---- a run stopped in its first epoch has checkpoints and no metrics yet: a plain start refuses --
run 2 60 train "${cfg[@]}" -o "$R" --set train.max_steps=4
expect_rc 0
rm "$R/metrics.jsonl"  # as a run stopped (signal, kill) before the end of its first epoch leaves it
digest=$(dir_digest "$R")
run 2 60 train "${cfg[@]}" -o "$R" --set optimizer.lr=0.01
expect_rc 2 "plain start over checkpoints"
expect_err_once "run directory $R already holds a run ($ck/latest, 2 step-*.h5 checkpoints in $ck); continue it with --resume auto"
[ "$(dir_digest "$R")" = "$digest" ] || fail "a refused start changed the run directory"

# ---- --resume auto without --config: the checkpoint's stored config, said so ----------------------
run 2 60 train -o "$R" --resume auto --set train.max_steps=6
expect_rc 0
expect_out "config: the one stored in $ck/step-000000004.h5 (no --config given), with --set on top"
grep -qF "784-" <<<"$OUT" && fail "the built-in default model was used: $OUT"
expect_out "16-8-4 relu MLP"
expect_out "3 epochs of 5 steps"
expect_out "resuming from $ck/step-000000004.h5: epoch 1, step 4"
expect_out "done: 6 steps (2 of them after resuming at step 4) in "
# metrics.jsonl: epoch 1 complete (steps 1-5), epoch 2 partial (step 6 of it), marked as such.
python3 - "$R/metrics.jsonl" <<'PY' || fail "metrics.jsonl does not mark the partial epoch: $(cat "$R/metrics.jsonl")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
got = [(r["epoch"], r["first_step"], r["step"], r["partial"]) for r in recs]
assert got == [(1, 1, 5, False), (2, 6, 6, True)], got
PY

# ---- a finished run resumed: nothing left to do, nothing written ---------------------------------
digest=$(dir_digest "$R")
run 2 60 train "${cfg[@]}" -o "$R" --resume auto --set train.max_steps=6
expect_rc 0 "finished by max_steps"
expect_out "nothing left to do: the run is at step 6 of 6 (train.max_steps = 6 is reached)"
[ "$(dir_digest "$R")" = "$digest" ] || fail "resuming a finished run wrote to it"
run 2 60 train "${cfg[@]}" -o "$R" --resume auto
expect_rc 0
expect_out "done: 15 steps"
python3 - "$R/metrics.jsonl" <<'PY' || fail "the resumed epoch 2 is not reported whole: $(cat "$R/metrics.jsonl")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
got = [(r["epoch"], r["first_step"], r["step"], r["partial"]) for r in recs]
assert got == [(1, 1, 5, False), (2, 6, 6, True), (2, 6, 10, False), (3, 11, 15, False)], got
PY
digest=$(dir_digest "$R")
run 1 60 train "${cfg[@]}" -o "$R" --resume auto
expect_rc 0 "finished by epochs"
expect_out "nothing left to do: the run is at step 15 of 15 (all 3 epochs (train.epochs) are done)"
run 1 60 train "${cfg[@]}" -o "$R" --resume auto --set train.epochs=2
expect_rc 0 "resumed with fewer epochs"
expect_out "nothing left to do: the run is at step 15, past the 10 steps this config asks for (all 2 epochs (train.epochs) are done)"
[ "$(dir_digest "$R")" = "$digest" ] || fail "resuming a finished run wrote to it"

# ---- a lost or damaged `latest`: the newest step file that reads, never a fresh start -------------
# damage CASE SETUP...: a copy of the run with `latest` damaged by SETUP (run in the copy's
# checkpoint directory), resumed for one more epoch.
damage() {
  local name=$1
  shift
  rm -rf "$WORK/$name" && cp -r "$R" "$WORK/$name"
  (cd "$WORK/$name/checkpoints" && eval "$*")
  run 2 60 train "${cfg[@]}" -o "$WORK/$name" --resume auto --set train.epochs=4
}
for how in missing empty outside dangling; do
  case $how in
    missing) damage $how "rm latest"; why="latest is missing" ;;
    empty) damage $how ": >latest"; why="latest is empty" ;;
    outside) damage $how "echo ../../../etc/passwd >latest"; why='latest holds "../../../etc/passwd", which is not the name of a file in the directory' ;;
    dangling) damage $how "echo step-000000999.h5 >latest"; why="latest names step-000000999.h5, which does not exist" ;;
  esac
  expect_rc 0 "latest $how"
  expect_out "$WORK/$how/checkpoints/$why; continuing from the newest checkpoint that reads: $WORK/$how/checkpoints/step-000000015.h5"
  expect_out "resuming from $WORK/$how/checkpoints/step-000000015.h5: epoch 4, step 15"
  expect_out "done: 20 steps"
  [ "$(cat "$WORK/$how/checkpoints/latest")" = "step-000000020.h5" ] || fail "latest not rewritten ($how)"
done
# The newest step file damaged too: the one before it.
damage older "rm latest; head -c 3000 step-000000015.h5 >cut; mv cut step-000000015.h5"
expect_rc 0 "newest damaged"
expect_out "continuing from the newest checkpoint that reads: $WORK/older/checkpoints/step-000000014.h5"
expect_out "resuming from $WORK/older/checkpoints/step-000000014.h5: epoch 3, step 14"
# None reads: refused, nothing touched.
rm -rf "$WORK/none" && cp -r "$R" "$WORK/none"
rm "$WORK/none/checkpoints/latest"
for f in "$WORK/none/checkpoints"/step-*.h5; do echo "not hdf5" >"$f"; done
digest=$(dir_digest "$WORK/none")
run 2 60 train "${cfg[@]}" -o "$WORK/none" --resume auto --set train.epochs=4
expect_rc 2 "no step file reads"
expect_err_once "--resume auto: checkpoint directory $WORK/none/checkpoints: $WORK/none/checkpoints/latest is missing, and none of the 9 step-*.h5 checkpoint(s) in the directory reads"
[ "$(dir_digest "$WORK/none")" = "$digest" ] || fail "a refused resume changed the run directory"
# A damaged pointer and no step file at all: refused.
mkdir -p "$WORK/ptr/checkpoints" && echo "../x" >"$WORK/ptr/checkpoints/latest"
run 1 60 train "${cfg[@]}" -o "$WORK/ptr" --resume auto
expect_rc 2
expect_err_once "latest holds \"../x\", which is not the name of a file in the directory, and the directory holds no step-*.h5 checkpoint to fall back on"
# inspect and --resume DIR use the same rule.
run 1 30 inspect "$WORK/missing/checkpoints"
expect_rc 0
rm "$WORK/missing/checkpoints/latest"
run 1 30 inspect "$WORK/missing/checkpoints"
expect_rc 0 "inspect DIR without latest"
expect_out "latest is missing; continuing from the newest checkpoint that reads: $WORK/missing/checkpoints/step-000000020.h5"
expect_out "global step 20"
run 1 30 inspect "$WORK/nonexistent"
expect_rc 2
expect_err_once "inspect $WORK/nonexistent: no such file or directory"

# ---- only best.h5 (no periodic checkpoints): --resume auto does not restart over it ---------------
run 2 60 train "${cfg[@]}" -o "$WORK/best" --set checkpoint.every_steps=0 --set checkpoint.every_epochs=0 \
  --set checkpoint.at_end=false
expect_rc 0
[ -f "$WORK/best/checkpoints/best.h5" ] && [ ! -e "$WORK/best/checkpoints/latest" ] || fail "expected best.h5 alone: $(ls "$WORK/best/checkpoints")"
digest=$(dir_digest "$WORK/best")
run 2 60 train "${cfg[@]}" -o "$WORK/best" --resume auto --set checkpoint.every_steps=0
expect_rc 2 "only best.h5"
expect_err_once "--resume auto: $WORK/best/checkpoints holds best.h5 but no checkpoint to continue from"
[ "$(dir_digest "$WORK/best")" = "$digest" ] || fail "a refused resume changed the run directory"

# ---- no checkpoint yet: --resume auto without --config takes the run's config.toml ----------------
run 1 60 train "${cfg[@]}" -o "$WORK/young" --set checkpoint.every_steps=0 --set checkpoint.every_epochs=0 \
  --set checkpoint.at_end=false --set data.val_size=0 --set train.epochs=1
expect_rc 0
run 1 60 train -o "$WORK/young" --resume auto --set train.max_steps=2
expect_rc 0 "stored config.toml"
expect_out "config: the one stored in $WORK/young/config.toml (no --config given), with --set on top"
expect_out "16-8-4 relu MLP"
expect_out "no checkpoint to resume in $WORK/young/checkpoints; starting afresh (earlier metrics kept as"
# Nothing stored at all: the built-in defaults, said so.
run 1 120 train -o "$WORK/nothing" --resume auto --set train.max_steps=1 --set 'model.layers=[784, 8, 10]' \
  --set data.val_size=0 --set data.test_images= --set data.test_labels=
expect_rc 0 "no stored config"
expect_out "config: no --config, and $WORK/nothing holds no stored config: the built-in defaults and --set are used"

# ---- two jobs on one run directory: the second fails at start; no stale lock after a kill ---------
rm -rf "$WORK/lk" && cp -r "$R" "$WORK/lk"
"$LOCKSTEP" train "${cfg[@]}" -o "$WORK/lk" --resume auto --set train.epochs=100000 >"$WORK/holder.out" 2>&1 &
holder=$!
trap 'kill -KILL "$holder" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 3000); do grep -q "^pid $holder " "$WORK/lk/lockstep.lock" 2>/dev/null && break; sleep 0.01; done
grep -q "^pid $holder on host $(hostname) since " "$WORK/lk/lockstep.lock" || fail "the lock file does not record its holder: $(cat "$WORK/lk/lockstep.lock" 2>&1)"
kill -STOP "$holder"  # holds the lock while frozen
digest=$(dir_digest "$WORK/lk")
run_ranks 2 20 train "${cfg[@]}" -o "$WORK/lk" --resume auto --set train.epochs=100000
expect_every_rank 2 2
expect_one_error "run directory $WORK/lk is in use by another job: its lock file $WORK/lk/lockstep.lock is held (pid $holder on host $(hostname) since "
[ "$(dir_digest "$WORK/lk")" = "$digest" ] || fail "the second job changed the run directory"
kill -KILL "$holder"
wait "$holder" 2>/dev/null || true
# (The holder may have trained a few steps before it was frozen: continue for two more.)
checksum_of "$WORK/lk/checkpoints" >/dev/null
at=$(grep -o "global step [0-9]*" <<<"$OUT" | grep -o "[0-9]*$")
run 2 60 train "${cfg[@]}" -o "$WORK/lk" --resume auto --set train.epochs=100000 --set train.max_steps=$((at + 2))
expect_rc 0 "after the holder was killed"
expect_out "done: $((at + 2)) steps"

# ---- destinations that cannot be written are refused before training -------------------------------
rm -rf "$WORK/dst" && cp -r "$R" "$WORK/dst"
mv "$WORK/dst/metrics.jsonl" "$WORK/dst/m" && mkdir "$WORK/dst/metrics.jsonl"
run 2 60 train "${cfg[@]}" -o "$WORK/dst" --resume auto --set train.epochs=4
expect_rc 2 "metrics.jsonl unwritable"
expect_err_once "metrics file $WORK/dst/metrics.jsonl: exists and is not a regular file"
grep -q "^epoch" <<<"$OUT" && fail "trained before refusing: $OUT"

# ---- the run's checkpoints in another checkpoint.dir than this start's: never a fresh start -------
# Resumed with a checkpoint.dir that holds nothing, while the run's own checkpoints/ has them.
rm -rf "$WORK/cdx" && cp -r "$R" "$WORK/cdx"
digest=$(dir_digest "$WORK/cdx")
run 2 60 train "${cfg[@]}" -o "$WORK/cdx" --resume auto --set checkpoint.dir="$WORK/cdx/ck2" --set train.epochs=4
expect_rc 2 "resume auto, checkpoints elsewhere"
expect_err_once "--resume auto: checkpoint directory $WORK/cdx/ck2 holds no checkpoint, but this run has checkpoints in $WORK/cdx/checkpoints"
[ "$(dir_digest "$WORK/cdx")" = "$digest" ] || fail "a refused resume changed the run directory"
# Started with its own checkpoint.dir, stopped in its first epoch (no metrics yet), then started
# or resumed without it: the stored config.toml says where the checkpoints are.
run 2 60 train "${cfg[@]}" -o "$WORK/own" --set checkpoint.dir="$WORK/own-ck" --set train.max_steps=2
expect_rc 0
rm "$WORK/own/metrics.jsonl"  # as if stopped before the first epoch's end
run 2 60 train "${cfg[@]}" -o "$WORK/own"
expect_rc 2 "plain start, checkpoints in the stored checkpoint.dir"
expect_err_once "run directory $WORK/own already holds a run ($WORK/own-ck/latest, 1 step-*.h5 checkpoint in $WORK/own-ck"
run 2 60 train "${cfg[@]}" -o "$WORK/own" --resume auto
expect_rc 2 "resume auto, checkpoints in the stored checkpoint.dir"
expect_err_once "but this run has checkpoints in $WORK/own-ck (another checkpoint.dir than this start's)"
# Resumed with it, the run continues.
run 2 60 train "${cfg[@]}" -o "$WORK/own" --resume auto --set checkpoint.dir="$WORK/own-ck"
expect_rc 0 "resume with the run's checkpoint.dir"
expect_out "resuming from $WORK/own-ck/step-000000002.h5"

# A relative checkpoint.dir, resumed from another working directory: the stored config names it
# absolutely, so the run's checkpoints are found (they used to be missed, and the run restarted).
mkdir -p "$WORK/wa" "$WORK/wb"
pushd "$WORK/wa" >/dev/null
run 1 60 train "${cfg[@]}" -o runs/x --set checkpoint.dir=ck --set train.max_steps=2
expect_rc 0
popd >/dev/null
pushd "$WORK/wb" >/dev/null
run 1 60 train "${cfg[@]}" -o "$WORK/wa/runs/x" --resume auto --set checkpoint.dir=ck
expect_rc 2 "relative checkpoint.dir from elsewhere"
expect_err_once "--resume auto: checkpoint directory ck holds no checkpoint, but this run has checkpoints in $WORK/wa/ck"
run 1 60 train -o "$WORK/wa/runs/x" --resume auto --set train.max_steps=4
expect_rc 0 "the stored config from elsewhere"
expect_out "resuming from $WORK/wa/ck/step-000000002.h5"
popd >/dev/null
# Two runs given one checkpoint.dir: --resume auto in the second finds the first one's
# checkpoints, and refuses rather than continue them as its own.
run 1 60 train "${cfg[@]}" -o "$WORK/sA" --set checkpoint.dir="$WORK/shared" --set train.max_steps=2
expect_rc 0
run 1 60 train "${cfg[@]}" -o "$WORK/sB" --set checkpoint.dir="$WORK/shared" --resume auto
expect_rc 2 "a shared checkpoint.dir"
expect_err_once "$WORK/shared/step-000000002.h5 was saved by the run in $WORK/sA, not by this one ($WORK/sB): checkpoint.dir = $WORK/shared holds the checkpoints of both"
[ ! -e "$WORK/sB" ] || fail "the refused run made its run directory"

# ---- resumed from an older checkpoint in place: the later course is set aside, not mixed in ---------
run 1 60 train "${cfg[@]}" -o "$WORK/br"
expect_rc 0
bck=$WORK/br/checkpoints
# A user's step-7.h5 (not a name a save writes: fewer than 9 digits) is neither resumed from nor
# set aside. Set-aside folders of the coming seconds exist already (another branch-off in the
# same second of the clock): they are left alone, and the new one gets a name of its own.
cp "$bck/step-000000014.h5" "$bck/step-7.h5"
for t in 0 1 2 3 4 5 6 7 8 9; do
  pre=$bck/abandoned-$(date -u -d "+$t seconds" +%Y%m%dT%H%M%SZ)
  mkdir -p "$pre" && echo precious >"$pre/step-000000015.h5"
done
run 1 60 train "${cfg[@]}" -o "$WORK/br" --resume "$bck/step-000000006.h5"
expect_rc 0 "resume from an older checkpoint"
expect_out "resuming at step 6 while the run had gone further: its later course is kept aside: 5 newer checkpoint(s) (step-000000008.h5 to step-000000015.h5) and its best.h5 (step 15) moved to $bck/abandoned-"
expect_out "; 2 later line(s) of metrics.jsonl (the whole file kept as $WORK/br/metrics-abandoned-"
aside=$(grep -o "moved to $bck/abandoned-[0-9TZ-]*" <<<"$OUT" | sed 's/^moved to //')
[[ "$aside" == *-2 ]] || fail "expected a -2 folder beside the existing one, got $aside"
[ "$(ls "$aside" | grep -c '^step-')" -eq 5 ] && [ -f "$aside/best.h5" ] || fail "abandoned: $(ls "$aside")"
[ "$(cat "$bck"/abandoned-*Z/step-000000015.h5 | sort -u)" = precious ] || fail "an existing set-aside folder was written into"
[ -f "$bck/step-7.h5" ] || fail "step-7.h5 (a user's file) was moved"
# Going back to the course set aside: not into this directory (the courses would mix), but into
# a new one.
run 1 60 train "${cfg[@]}" -o "$WORK/br" --resume "$aside/step-000000015.h5" --set train.epochs=4
expect_rc 2 "resume from a set-aside course in place"
expect_err_once "--resume $aside/step-000000015.h5: a course this run set aside; continuing it here would mix it with the one in $bck"
run 1 60 train "${cfg[@]}" -o "$WORK/br-old" --resume "$aside/step-000000015.h5" --set train.epochs=4
expect_rc 0 "the set-aside course in a run directory of its own"
expect_out "done: 20 steps"
for e in 1 2 3; do
  [ "$(grep -c "\"epoch\":$e," "$WORK/br/metrics.jsonl")" -eq 1 ] || fail "epoch $e not once in metrics.jsonl: $(cat "$WORK/br/metrics.jsonl")"
done
[ "$(cat "$bck/latest")" = "step-000000015.h5" ] || fail "latest: $(cat "$bck/latest")"

# ---- rotation prunes only its own step-<digits>.h5 files -------------------------------------------
cp "$ck/step-000000002.h5" "$ck/step-000000002-keep.h5"
run 1 60 train "${cfg[@]}" -o "$R" --resume auto --set train.epochs=4 --set checkpoint.keep=1
expect_rc 0
[ -f "$ck/step-000000002-keep.h5" ] || fail "rotation deleted a user's step-000000002-keep.h5"
[ "$(ls "$ck" | grep -c '^step-[0-9]*\.h5$')" -eq 1 ] || fail "keep=1 left: $(ls "$ck")"
echo "ok"
