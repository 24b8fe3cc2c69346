#!/usr/bin/env bash
# The job scripts without a cluster: every script passes `bash -n`; every variable a script
# reads from the environment is documented in its header (and the checker does catch an
# undocumented one); train.sbatch refuses to run outside a job; distill.sbatch submits the
# teacher, then the student with --dependency=afterok on the teacher's job id.
set -euo pipefail
: "${SOURCE_DIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$SOURCE_DIR"
work=$(mktemp -d /tmp/lockstep-job-scripts.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# The Slurm variables of a surrounding job would change what the scripts do.
for v in $(compgen -e | grep -E '^(SLURM_|SBATCH_)' || true); do unset "$v"; done

scripts=(jobs/slurm/*.sbatch jobs/*.sh scripts/mpi-flags.sh)
[ ${#scripts[@]} -ge 6 ] || fail "expected the job scripts, found: ${scripts[*]}"
for f in "${scripts[@]}"; do
  bash -n "$f" || fail "$f: bash -n"
done
echo "ok: bash -n on ${scripts[*]}"

# --- documented environment --------------------------------------------------------------------
out=$(bash tests/slurm/env_documented.sh jobs/slurm/*.sbatch jobs/*.sh 2>&1) || fail "$out"
grep -q "^jobs/slurm/train.sbatch: .*LOCKSTEP_LAUNCHER.*SLURM_CPUS_PER_TASK" <<<"$out" ||
  fail "the checker missed variables of train.sbatch: $out"
echo "ok: every variable read from the environment is documented"
# The checker itself: FOO is documented, BAR (self-default), BAZ (never assigned) are not;
# the local ones (x, y, the loop variable, a read target) are not environment.
cat >"$work/sample.sh" <<'EOF'
#!/bin/bash
# A sample. Environment: FOO.
set -eu
x=1
BAR=${BAR:-2}
for i in 1 2; do echo "$i"; done
read -r y <<<"3"
echo "$x $y ${FOO:-} $BAR ${BAZ:-}"  # $QUX only in a comment
EOF
set +e; msg=$(bash tests/slurm/env_documented.sh "$work/sample.sh" 2>&1); rc=$?; set -e
[ "$rc" -ne 0 ] || fail "the checker passed a script with undocumented variables: $msg"
[ "$(grep -c 'header does not document' <<<"$msg")" -eq 2 ] && grep -q "reads BAR " <<<"$msg" &&
  grep -q "reads BAZ " <<<"$msg" || fail "the checker should flag exactly BAR and BAZ: $msg"
grep -q "sample.sh: BAR BAZ FOO$" <<<"$msg" || fail "the checker's list: $msg"
echo "ok: the checker flags undocumented variables"

# --- run-local.sh: a bad rank count is refused before anything is installed or built -------------
for args in "-n" "-n abc" "-n 0"; do
  # shellcheck disable=SC2086
  set +e; msg=$(bash jobs/run-local.sh $args 2>&1); rc=$?; set -e
  [ "$rc" -eq 2 ] && grep -q "^jobs/run-local.sh: -n needs a number of ranks >= 1, got '" <<<"$msg" ||
    fail "run-local.sh $args: rc $rc: $msg"
done
set +e; msg=$(LOCKSTEP_RANKS=two bash jobs/run-local.sh 2>&1); rc=$?; set -e
[ "$rc" -eq 2 ] && grep -q "LOCKSTEP_RANKS needs a number of ranks >= 1, got 'two'" <<<"$msg" ||
  fail "run-local.sh with LOCKSTEP_RANKS=two: rc $rc: $msg"
echo "ok: run-local.sh refuses a bad rank count"

# --- train.sbatch outside a job ------------------------------------------------------------------
set +e; msg=$(bash jobs/slurm/train.sbatch cfg.toml runs/x 2>&1); rc=$?; set -e
[ "$rc" -eq 2 ] && grep -q "submit this script with sbatch" <<<"$msg" || fail "train.sbatch outside a job: rc $rc: $msg"

# --- distill.sbatch ------------------------------------------------------------------------------
cd "$work"
printf '# teacher\n' >teacher.toml
printf '# student\n' >student.toml
distill=$SOURCE_DIR/jobs/slurm/distill.sbatch
out=$("$distill" --dry-run teacher.toml runs/t student.toml runs/s -- --set train.epochs=3)
train=$SOURCE_DIR/jobs/slurm/train.sbatch
[ "$(grep '^teacher: ' <<<"$out")" = "teacher: sbatch --parsable --job-name=lockstep-teacher --output=runs/t/logs/slurm-%j.out --export=ALL,LOCKSTEP_ROOT=$SOURCE_DIR,LOCKSTEP_COMMAND=train $train teacher.toml runs/t" ] ||
  fail "dry-run teacher: $out"
[ "$(grep '^student: ' <<<"$out")" = "student: sbatch --parsable --job-name=lockstep-student --output=runs/s/logs/slurm-%j.out --dependency=afterok:TEACHER_JOB_ID --kill-on-invalid-dep=yes --export=ALL,LOCKSTEP_ROOT=$SOURCE_DIR,LOCKSTEP_COMMAND=distill $train student.toml runs/s --teacher runs/t/checkpoints/best.h5 --set train.epochs=3" ] ||
  fail "dry-run student: $out"
[ ! -e runs ] || fail "--dry-run created directories"
# A stand-in sbatch that records each call and answers like `sbatch --parsable` on a federation.
cat >fake-sbatch <<'EOF'
#!/bin/bash
n=$(( $(cat calls 2>/dev/null | wc -l) + 1 ))
printf '%s\n' "$*" >>calls
echo "$((4240 + n));cluster"
EOF
chmod +x fake-sbatch
out=$(SBATCH=./fake-sbatch TEACHER_SBATCH_ARGS="--nodes=4 --time=04:00:00" STUDENT_SBATCH_ARGS="--nodes=1" \
      "$distill" teacher.toml runs/t student.toml runs/s)
[ "$(wc -l <calls)" -eq 2 ] || fail "expected two sbatch calls: $(cat calls)"
teacher_call=$(sed -n 1p calls) student_call=$(sed -n 2p calls)
[[ "$teacher_call" == *" --nodes=4 --time=04:00:00 "*"LOCKSTEP_COMMAND=train $train teacher.toml runs/t" ]] || fail "teacher: $teacher_call"
[[ "$student_call" == *" --dependency=afterok:4241 --kill-on-invalid-dep=yes --nodes=1 "*"LOCKSTEP_COMMAND=distill $train student.toml runs/s --teacher runs/t/checkpoints/best.h5" ]] ||
  fail "student: $student_call"
grep -q "^teacher job 4241: runs/t" <<<"$out" && grep -q "^student job 4242: runs/s, starts after job 4241" <<<"$out" ||
  fail "distill.sbatch output: $out"
[ -d runs/t/logs ] && [ -d runs/s/logs ] || fail "the log directories were not made before submission"
# Mistakes are refused before anything is submitted.
rm -f calls
for args in "teacher.toml runs/t student.toml" "teacher.toml runs/t student.toml runs/t" \
            "missing.toml runs/t student.toml runs/s" "teacher.toml runs/t student.toml runs/s --set a=1"; do
  set +e; msg=$(SBATCH=./fake-sbatch "$distill" $args 2>&1); rc=$?; set -e
  [ "$rc" -eq 2 ] || fail "distill.sbatch $args: expected exit code 2, got $rc: $msg"
  [ ! -e calls ] || fail "distill.sbatch $args submitted: $(cat calls)"
done
echo "ok: distill.sbatch submits the teacher, then the student after it; refuses bad arguments"
