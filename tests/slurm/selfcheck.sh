#!/usr/bin/env bash
# tests/slurm/selfcheck.sh -- prove tests/slurm/cluster.sh gives a usable
# Slurm cluster: bring one up in a temporary folder, exercise what lockstep's
# tests rely on (srun, PMIx MPI launch, sbatch --wait, immediate rejection of
# impossible jobs, signal delivery to the batch shell, requeue), tear it down.
#
# Usage: tests/slurm/selfcheck.sh        (as root; ~30 s)
# Exit status 0 only if every check passes.  Set KEEP=1 to keep the temporary
# folder (logs, job outputs) for inspection; it is printed either way.

set -uo pipefail   # no -e: a failing check is recorded, the others still run

here=$(cd "$(dirname "$0")" && pwd)
cluster=$here/cluster.sh

dir=$(mktemp -d "${TMPDIR:-/tmp}/lockstep-slurm.XXXXXX") || exit 1

# Tear the cluster down on ANY exit (success, failure, Ctrl-C, kill).
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    "$cluster" down "$dir" || true
    if [ "${KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        echo "selfcheck: files kept in $dir" >&2
    else
        rm -rf -- "$dir"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tiny test framework ---------------------------------------------------
failures=0
passes=0
pass() { passes=$((passes + 1)); echo "PASS: $*"; }
fail() { failures=$((failures + 1)); echo "FAIL: $*"; }

# wait_for SECONDS COMMAND...: poll COMMAND every 0.2 s until it succeeds;
# return 1 if it has not within SECONDS.
wait_for() {
    local limit=$1 start=$SECONDS
    shift
    until "$@"; do
        [ $((SECONDS - start)) -ge "$limit" ] && return 1
        sleep 0.2
    done
}

# job_gone JOBID: the job is no longer running or pending (finished records
# disappear after MinJobAge, so "unknown job" counts as gone too).
job_gone() {
    local st
    st=$(squeue -h -j "$1" -o %T 2>/dev/null)
    case "$st" in PENDING | RUNNING | CONFIGURING | COMPLETING | SUSPENDED | REQUEUED*) return 1 ;; esac
    return 0
}

t0=$SECONDS

# --- 0. bring the cluster up -----------------------------------------------
echo "selfcheck: cluster in $dir"
if ! "$cluster" up "$dir" >/dev/null; then
    echo "FAIL: cluster.sh up" >&2
    exit 1
fi
# shellcheck disable=SC1091
source "$dir/env.sh"
if [ "$SLURM_CONF" = "$dir/slurm.conf" ]; then
    pass "env.sh sets SLURM_CONF"
else
    fail "env.sh: SLURM_CONF=$SLURM_CONF"
fi
echo "selfcheck: up after $((SECONDS - t0)) s"
cpus=$(nproc)

# --- 1. srun -n 2 hostname -------------------------------------------------
out=$(timeout 30 srun -n 2 hostname 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ "$(grep -c . <<<"$out")" -eq 2 ]; then
    pass "srun -n 2 hostname"
else
    fail "srun -n 2 hostname (rc=$rc): $out"
fi

# --- 2. MPI hello via srun --mpi=pmix -------------------------------------
cat >"$dir/hello.c" <<'EOF'
/* Prints "rank R size S" from every MPI rank. */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    printf("rank %d size %d\n", rank, size);
    MPI_Finalize();
    return 0;
}
EOF
# Exactly two ranks, both reporting size 2.
mpi_ok() { [ "$(grep -cE '^rank [01] size 2$' "$1")" -eq 2 ] && grep -q '^rank 0 ' "$1" && grep -q '^rank 1 ' "$1"; }

if mpicc -o "$dir/hello" "$dir/hello.c"; then
    timeout 60 srun --mpi=pmix -n 2 "$dir/hello" >"$dir/srun_mpi.out" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && mpi_ok "$dir/srun_mpi.out"; then
        pass "srun --mpi=pmix -n 2 hello: both ranks see size 2"
    else
        fail "srun --mpi=pmix -n 2 hello (rc=$rc): $(cat "$dir/srun_mpi.out")"
    fi
else
    fail "mpicc hello.c"
fi

# --- 3. sbatch --wait running srun --mpi=pmix --------------------------------
cat >"$dir/batch_mpi.sh" <<EOF
#!/bin/bash
#SBATCH -n 2
#SBATCH -o $dir/batch_mpi.out
srun --mpi=pmix -n 2 $dir/hello
EOF
s=$SECONDS
timeout 60 sbatch --wait "$dir/batch_mpi.sh" >/dev/null
rc=$?
if [ $rc -eq 0 ] && [ -f "$dir/batch_mpi.out" ] && mpi_ok "$dir/batch_mpi.out"; then
    pass "sbatch --wait + srun --mpi=pmix ($((SECONDS - s)) s)"
else
    fail "sbatch --wait + srun --mpi=pmix (rc=$rc): $(cat "$dir/batch_mpi.out" 2>&1)"
fi

# The job's exit code must come back through sbatch --wait.
timeout 60 sbatch --wait -n 1 -o /dev/null --wrap 'exit 3' >/dev/null
rc=$?
if [ $rc -eq 3 ]; then
    pass "sbatch --wait returns the job's exit code"
else
    fail "sbatch --wait of 'exit 3' returned $rc"
fi

# mpirun inside an allocation (lockstep is also launched by mpirun); as root
# Open MPI needs --allow-run-as-root.
timeout 60 sbatch --wait -n 2 -o "$dir/batch_mpirun.out" \
    --wrap "mpirun --allow-run-as-root -np 2 $dir/hello" >/dev/null
rc=$?
if [ $rc -eq 0 ] && mpi_ok "$dir/batch_mpirun.out"; then
    pass "sbatch --wait + mpirun -np 2"
else
    fail "sbatch --wait + mpirun (rc=$rc): $(cat "$dir/batch_mpirun.out" 2>&1)"
fi

# --- 4. impossible requests are rejected at submission, not left pending ----
for req in "-n $((cpus * 4))" "-N 2" "--mem=$((64 * 1024 * 1024))"; do
    s=$SECONDS
    # shellcheck disable=SC2086
    msg=$(timeout 10 sbatch --parsable $req -o /dev/null --wrap true 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $((SECONDS - s)) -le 5 ]; then
        pass "sbatch $req rejected immediately: $(tail -n1 <<<"$msg")"
    else
        fail "sbatch $req not rejected (rc=$rc): $msg"
        # shellcheck disable=SC2086
        [[ "$msg" =~ ^[0-9]+$ ]] && scancel "$msg"
    fi
done
pending=$(squeue -h -t PD -o %i)
if [ -z "$pending" ]; then
    pass "no job left pending"
else
    fail "pending jobs: $pending"
fi

# --- 5. signal delivery to the batch shell ---------------------------------
# The script traps USR1.  bash runs a trap only between commands, so it waits
# on a background sleep (`wait` is interrupted by signals) rather than
# running `sleep` in the foreground.  It kills its sleep itself: with
# proctrack/linuxproc an orphaned child is not reliably cleaned up.
cat >"$dir/sig.sh" <<EOF
#!/bin/bash
#SBATCH -n 1
#SBATCH -o $dir/sig.out
on_usr1() { echo "got USR1" >"$dir/sig.marker"; kill \$sleeper 2>/dev/null; exit 0; }
trap on_usr1 USR1
sleep 60 & sleeper=\$!
touch "$dir/sig.started"
wait \$sleeper
echo "no signal" >"$dir/sig.marker"
EOF
jid=$(sbatch --parsable "$dir/sig.sh")
if [ -z "$jid" ]; then
    fail "signal: sbatch failed"
elif ! wait_for 20 test -e "$dir/sig.started"; then
    fail "signal: job $jid did not start within 20 s"
    scancel "$jid"
else
    s=$SECONDS
    scancel --signal=USR1 --batch "$jid"
    if wait_for 10 grep -q 'got USR1' "$dir/sig.marker" 2>/dev/null; then
        pass "scancel --signal=USR1 --batch reaches the batch shell ($((SECONDS - s)) s)"
    else
        fail "signal: no marker after 10 s: $(cat "$dir/sig.marker" "$dir/sig.out" 2>&1)"
        scancel "$jid"
    fi
    wait_for 15 job_gone "$jid" || fail "signal: job $jid still there"
fi

# --- 6. requeue ------------------------------------------------------------
# First run (SLURM_RESTART_COUNT unset) blocks until requeued; the second run
# (SLURM_RESTART_COUNT=1) finishes at once.  --open-mode=append keeps both
# runs' output in one file.  The requeued job may start only after
# cred_expire + 1 s (see README), so this check takes ~7-10 s.
cat >"$dir/requeue.sh" <<EOF
#!/bin/bash
#SBATCH -n 1
#SBATCH -o $dir/requeue.out
#SBATCH --open-mode=append
#SBATCH --requeue
echo "run SLURM_RESTART_COUNT=\${SLURM_RESTART_COUNT:-0}"
touch "$dir/requeue.started.\${SLURM_RESTART_COUNT:-0}"
if [ "\${SLURM_RESTART_COUNT:-0}" = 0 ]; then
    sleep 60 & wait \$!
fi
echo "finished SLURM_RESTART_COUNT=\${SLURM_RESTART_COUNT:-0}"
EOF
jid=$(sbatch --parsable "$dir/requeue.sh")
if [ -z "$jid" ]; then
    fail "requeue: sbatch failed"
elif ! wait_for 20 test -e "$dir/requeue.started.0"; then
    fail "requeue: job $jid did not start within 20 s"
    scancel "$jid"
else
    s=$SECONDS
    if ! scontrol requeue "$jid"; then
        fail "requeue: scontrol requeue $jid failed"
        scancel "$jid"
    elif wait_for 45 grep -q '^finished SLURM_RESTART_COUNT=1$' "$dir/requeue.out"; then
        pass "scontrol requeue: job ran again with SLURM_RESTART_COUNT=1 ($((SECONDS - s)) s)"
    else
        fail "requeue: $(cat "$dir/requeue.out" 2>&1); $(squeue -j "$jid" -o '%i %T %r %S' 2>&1)"
        scancel "$jid"
    fi
fi

# --- summary -----------------------------------------------------------------
echo "selfcheck: $passes passed, $failures failed, $((SECONDS - t0)) s (before teardown)"
[ "$failures" -eq 0 ]
