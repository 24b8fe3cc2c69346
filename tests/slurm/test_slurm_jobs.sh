#!/usr/bin/env bash
# The Slurm job scripts on a real single-node Slurm (tests/slurm/cluster.sh): jobs/slurm/train.sbatch
# trains on 2 tasks with srun and with mpirun, survives the time-limit warning (checkpoint at a step
# boundary, requeue, resume, the same final weights as an uninterrupted run), impossible requests fail
# at submission, PMI mistakes stop before training, and distill.sbatch chains its two jobs.
# Needs root, munge and slurm-wlm (tests/run.sh installs them); fails, never skips, without them.
set -euo pipefail
: "${LOCKSTEP:?set by CTest to the lockstep binary}"
: "${SOURCE_DIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
cluster=$SOURCE_DIR/tests/slurm/cluster.sh
train=$SOURCE_DIR/jobs/slurm/train.sbatch
bin=$(readlink -f "$LOCKSTEP")
work=$(realpath "$(mktemp -d /tmp/lockstep-slurm-jobs.XXXXXX)")
frozen=()

cleanup() {
  local rc=$?
  trap - EXIT
  [ ${#frozen[@]} -eq 0 ] || kill -CONT "${frozen[@]}" 2>/dev/null || true
  "$cluster" down "$work/cluster" >/dev/null 2>&1 || true
  if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "files kept in $work" >&2; fi
  exit "$rc"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  local f
  for f in "$work"/*/logs/*.log "$work"/*.out; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }
  done
  exit 1
}
# wait_for SECONDS CMD...: poll CMD every 0.1 s; a hang guard only, never a pacing sleep.
wait_for() {
  local limit=$1 start=$SECONDS
  shift
  until "$@"; do
    [ $((SECONDS - start)) -lt "$limit" ] || return 1
    sleep 0.1
  done
}
checksum() { "$bin" inspect "$1" | grep -o 'checksum [0-9a-f]*'; }

"$cluster" up "$work/cluster" >/dev/null || fail "cluster.sh up failed (is munge and slurm-wlm installed? tests/run.sh installs them)"
# shellcheck disable=SC1091
source "$work/cluster/env.sh"
cpus=$(nproc)
export LOCKSTEP="$bin"
cd "$work"   # jobs start in the submit directory: relative paths resolve here

# A small run: 2 epochs of 907 steps of a 784-64-10 MLP; a checkpoint every 25 steps, all kept.
# (Long enough that the ranks, frozen once the step-25 checkpoint appears, are still mid-run on a
# loaded machine: a few hundred steps pass between the file appearing and the freeze.)
cat >tiny.toml <<EOF
[run]
seed = 11
[data]
train_images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
train_labels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
classes = 10
val_size = 2000
[model]
layers = [784, 64, 10]
[train]
epochs = 2
batch_size = 64
progress = false
[optimizer]
name = "adam"
lr = 0.002
[checkpoint]
every_steps = 25
keep = 100
EOF
sb=(sbatch --nodes=1 --ntasks-per-node=2)

# --- 1. an uninterrupted run: 2 tasks through srun --mpi=pmix ------------------------------------
set +e; timeout 300 "${sb[@]}" --wait --output=whole.out "$train" tiny.toml whole >/dev/null; rc=$?; set -e
[ "$rc" -eq 0 ] || fail "train.sbatch (srun) exited with $rc"
log=$(echo whole/logs/train-*.log)
grep -q "2 rank(s) on cpu" "$log" || fail "the job did not train on 2 ranks"
grep -q '^+ srun --mpi=pmix' "$log" || fail "not launched with srun --mpi=pmix"
[ "$(wc -l <whole/metrics.jsonl)" -eq 2 ] && grep -q '"step":1814' whole/metrics.jsonl ||
  fail "metrics.jsonl: $(cat whole/metrics.jsonl)"
[ "$(cat whole/checkpoints/latest)" = step-000001814.h5 ] || fail "latest checkpoint: $(cat whole/checkpoints/latest)"
"$bin" inspect whole/checkpoints | grep -q "on 2 rank(s)" || fail "checkpoint not written by 2 ranks"
whole_sum=$(checksum whole/checkpoints)
echo "ok: train.sbatch on 2 tasks (srun), $whole_sum"

# --- 2. the same run launched by mpirun inside the allocation: the same weights ------------------
set +e; LOCKSTEP_LAUNCHER=mpirun timeout 300 "${sb[@]}" --wait --output=mpirun.out "$train" tiny.toml mpirun >/dev/null; rc=$?; set -e
[ "$rc" -eq 0 ] || fail "train.sbatch (mpirun) exited with $rc"
grep -q '^+ mpirun -np 2' mpirun/logs/train-*.log || fail "not launched with mpirun -np 2"
[ "$(checksum mpirun/checkpoints)" = "$whole_sum" ] || fail "mpirun run ends with $(checksum mpirun/checkpoints), srun run with $whole_sum"
echo "ok: LOCKSTEP_LAUNCHER=mpirun gives the same weights"

# --- 3. preemption: the warning signal mid-run, checkpoint, requeue, resume ----------------------
# sbatch --wait stays through the requeue and returns the exit code of the last run.
timeout 300 "${sb[@]}" --wait --output=cut.out "$train" tiny.toml cut >cut.sbatch 2>&1 &
waiter=$!
wait_for 30 grep -q '^Submitted batch job' cut.sbatch || fail "sbatch: $(cat cut.sbatch)"
job=$(grep -o '[0-9]*$' cut.sbatch)
# A job that depends on it (afterok) must wait through the requeue for the final run.
dep=$(sbatch --parsable -n 1 --output=/dev/null --dependency=afterok:"$job" --kill-on-invalid-dep=yes \
      --wrap "grep -c 'lockstep exited with code' cut/logs/train-$job.log >dep.out")
# Freeze both ranks while the signal travels (scancel -> slurmctld -> slurmd -> batch shell ->
# srun -> ranks), so the stop lands mid-run however slow that path is; continue them once the
# signal is pending in both. The ranks are looked up first, so that they are frozen right
# after the first checkpoint appears.
ranks() {
  local p
  for p in /proc/[0-9]*; do
    # this binary, this run directory, started in this test's folder (not another test's)
    [ "$(readlink "$p/exe" 2>/dev/null)" = "$bin" ] && [ "$(readlink "$p/cwd" 2>/dev/null)" = "$work" ] &&
      tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "--run-dir cut " && echo "${p#/proc/}"
  done
  return 0
}
wait_for 120 grep -q "run directory cut" "cut/logs/train-$job.log" 2>/dev/null || fail "the job did not start training"
mapfile -t pids < <(ranks)
[ ${#pids[@]} -eq 2 ] || fail "expected 2 rank processes, found ${#pids[@]}"
wait_for 120 test -f cut/checkpoints/step-000000025.h5 || fail "no first checkpoint in cut/"
kill -STOP "${pids[@]}"
frozen=("${pids[@]}")
scancel --signal=USR1 --batch "$job"
usr1_pending() {
  local p mask
  for p in "${frozen[@]}"; do
    mask=$(awk '/^(SigPnd|ShdPnd):/ {m = m $2 " "} END {print m}' "/proc/$p/status")
    set -- $mask
    (( (16#$1 | 16#$2) & 0x200 )) || return 1
  done
}
wait_for 60 usr1_pending || fail "SIGUSR1 never reached the frozen ranks"
kill -CONT "${frozen[@]}"
frozen=()
set +e; wait "$waiter"; rc=$?; set -e
[ "$rc" -eq 0 ] || fail "the preempted job ended with $rc: $(cat cut.sbatch)"
log=cut/logs/train-$job.log
grep -q "SIGUSR1 at .*forwarding it to the ranks" "$log" || fail "the batch script did not forward SIGUSR1"
step=$(grep -o 'stopped on request (signal 10) at step [0-9]*' "$log" | grep -o '[0-9]*$') ||
  fail "no stop on request in $log"
[ "$step" -gt 25 ] && [ "$step" -lt 1814 ] || fail "stopped at step $step, not mid-run"
stop_ck=cut/checkpoints/$(printf 'step-%09d.h5' "$step")
grep -qE "^checkpoint: $stop_ck \((stop requested|every_steps)\)" "$log" || fail "no checkpoint $stop_ck in the log"
"$bin" inspect "$stop_ck" | grep -q "global step $step," || fail "$stop_ck is not at step $step"
grep -q "lockstep exited with code 75" "$log" || fail "the first run did not exit with 75"
grep -q "requeueing job $job" "$log" || fail "the job was not requeued"
grep -q "=== job $job start 2 " "$log" || fail "the requeued job did not start again"
grep -qF "resuming from $stop_ck: " "$log" || fail "the requeued run did not resume from $stop_ck"
[ "$(grep -c 'lockstep exited with code' "$log")" -eq 2 ] && grep -q 'lockstep exited with code 0' "$log" ||
  fail "expected two runs, the second ending with 0"
[ "$(checksum cut/checkpoints)" = "$whole_sum" ] ||
  fail "requeued run ends with $(checksum cut/checkpoints), the uninterrupted run with $whole_sum"
job_done() { [ -z "$(squeue -h -j "$1" -t PD,R,CG,CF -o %i 2>/dev/null)" ]; }
wait_for 60 job_done "$dep" || fail "the dependent job $dep did not run"
[ "$(cat dep.out 2>/dev/null)" = 2 ] || fail "the afterok job ran after $(cat dep.out 2>/dev/null || echo no) run(s) of $job, not after both"
echo "ok: USR1 at step $step -> checkpoint, exit 75, requeue, resume: same weights; afterok waited for the end"

# --- 4. an impossible request fails at submission instead of pending -----------------------------
start=$SECONDS
set +e; msg=$(timeout 20 sbatch --parsable --nodes=1 --ntasks-per-node=$((cpus * 2)) "$train" tiny.toml never 2>&1); rc=$?; set -e
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "sbatch of $((cpus * 2)) tasks on $cpus CPUs was accepted (rc $rc): $msg"
[ $((SECONDS - start)) -le 10 ] || fail "the rejection took $((SECONDS - start)) s"
[ -z "$(squeue -h -t PD -o %i)" ] || fail "jobs left pending: $(squeue -t PD)"
echo "ok: $((cpus * 2)) tasks on a $cpus-CPU node rejected at once: $msg"

# --- 5. launch mistakes stop before training ------------------------------------------------------
# srun without PMIx: Debian's Open MPI cannot start (it has no PMI-1/PMI-2), every task exits.
for mpi in pmi2 none; do
  set +e; out=$(timeout 60 srun --mpi=$mpi -n 2 "$bin" train --config tiny.toml --run-dir "pmi-$mpi" 2>&1); rc=$?; set -e
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "srun --mpi=$mpi: exit code $rc"
  grep -q "not built with SLURM's PMI support" <<<"$out" || fail "srun --mpi=$mpi: $out"
  [ ! -e "pmi-$mpi" ] || fail "srun --mpi=$mpi created the run directory"
done
# A 2-task job whose script runs lockstep without srun: a world of 1 while SLURM_NTASKS=2.
set +e; timeout 60 sbatch --wait -n 2 --output=nosrun.out --wrap "$bin train --config tiny.toml --run-dir nosrun" >/dev/null; rc=$?; set -e
[ "$rc" -eq 2 ] || fail "lockstep without srun in a 2-task job: exit code $rc"
grep -q "MPI reports a world of 1 rank, but SLURM_NTASKS=2" nosrun.out || fail "no PMI hint: $(cat nosrun.out)"
grep -q "srun --mpi=pmix" nosrun.out || fail "the hint lacks srun --mpi=pmix"
[ ! -e nosrun/metrics.jsonl ] || fail "it trained anyway"
# mpirun -np 1 inside the 2-task job is one rank on purpose, not a mismatch.
set +e; timeout 120 sbatch --wait -n 2 --output=np1.out \
  --wrap "mpirun --allow-run-as-root -np 1 $bin train --config tiny.toml --run-dir np1 --set train.max_steps=5" >/dev/null
rc=$?; set -e
[ "$rc" -eq 0 ] && grep -q "1 rank(s) on cpu" np1.out || fail "mpirun -np 1 in a 2-task job (rc $rc): $(cat np1.out)"
echo "ok: srun --mpi=pmi2/none and a missing srun stop before training; mpirun -np 1 runs"

# --- 6. distill.sbatch: the student job starts only after the teacher job succeeded -------------
# A stand-in for lockstep records its arguments; the teacher's writes best.h5 after a pause in
# which the student must not have started, the student's checks that best.h5 is there.
cat >fake-lockstep <<'EOF'
#!/bin/bash
sub=$1; shift
while [ $# -gt 0 ]; do
  case $1 in --run-dir) dir=$2; shift ;; --teacher) teacher=$2; shift ;; esac
  shift
done
echo "$sub $SLURM_JOB_ID" >>"$LOG"
if [ "$sub" = train ]; then
  sleep 2
  mkdir -p "$dir/checkpoints" && echo teacher >"$dir/checkpoints/best.h5"
  [ "$FAIL_TEACHER" = 1 ] && exit 3
else
  [ -f "$teacher" ] || exit 9
fi
exit 0
EOF
chmod +x fake-lockstep
mkdir -p repo/jobs/slurm repo/build && cp "$train" repo/jobs/slurm/ && cp fake-lockstep repo/build/lockstep
cat >student.toml <<<'# student'
out=$(LOCKSTEP= LOCKSTEP_ROOT="$work/repo" LOG="$work/distill.log" FAIL_TEACHER=0 TEACHER_SBATCH_ARGS="--nodes=1 --ntasks-per-node=1" \
      STUDENT_SBATCH_ARGS="--nodes=1 --ntasks-per-node=1" "$SOURCE_DIR/jobs/slurm/distill.sbatch" tiny.toml teacher student.toml student -- --set a.b=1)
teacher_job=$(grep -o '^teacher job [0-9]*' <<<"$out" | grep -o '[0-9]*$') || fail "distill.sbatch: $out"
student_job=$(grep -o '^student job [0-9]*' <<<"$out" | grep -o '[0-9]*$') || fail "distill.sbatch: $out"
squeue -h -j "$student_job" -o '%E' | grep -q "afterok:$teacher_job" || fail "student job has no afterok:$teacher_job dependency"
wait_for 120 job_done "$student_job" || fail "the student job did not finish"
[ "$(cat distill.log)" = "train $teacher_job"$'\n'"distill $student_job" ] || fail "distill.log: $(cat distill.log)"
slog=$(echo student/logs/distill-"$student_job".log)
grep -q "lockstep exited with code 0" "$slog" || fail "student: $(cat "$slog")"
grep -qF -- "distill --config student.toml --run-dir student --resume auto --teacher teacher/checkpoints/best.h5 --set a.b=1" "$slog" ||
  fail "student command: $(grep '^+' "$slog")"
# A failing teacher: the student is cancelled, not left pending.
out=$(LOCKSTEP= LOCKSTEP_ROOT="$work/repo" LOG="$work/distill2.log" FAIL_TEACHER=1 TEACHER_SBATCH_ARGS="--nodes=1 --ntasks-per-node=1" \
      STUDENT_SBATCH_ARGS="--nodes=1 --ntasks-per-node=1" "$SOURCE_DIR/jobs/slurm/distill.sbatch" tiny.toml teacher2 student.toml student2)
student_job=$(grep -o '^student job [0-9]*' <<<"$out" | grep -o '[0-9]*$') || fail "distill.sbatch: $out"
wait_for 60 job_done "$student_job" || fail "the student of a failed teacher is still queued: $(squeue -j "$student_job")"
[ "$(grep -c . distill2.log)" -eq 1 ] || fail "the student ran after a failed teacher: $(cat distill2.log)"
echo "ok: distill.sbatch: teacher job, then the student job after it (afterok); a failed teacher cancels the student"
echo "all Slurm job checks passed in $SECONDS s"
