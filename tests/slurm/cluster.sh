#!/usr/bin/env bash
# tests/slurm/cluster.sh -- a private, single-node Slurm cluster on loopback,
# for tests.  No systemd, no /etc/slurm, no /etc/munge: everything (munge key,
# munge socket, slurm.conf, state, spool, pid files, logs) lives under DIR.
#
# Usage:
#   tests/slurm/cluster.sh up   DIR   # create DIR, start munged + slurmctld + slurmd,
#                                     # wait until the node is idle, then print the
#                                     # client environment (also written to DIR/env.sh)
#   tests/slurm/cluster.sh down DIR   # stop the daemons via their pid files
#                                     # (TERM, then KILL); idempotent; keeps logs
#
# Typical use:
#   dir=$(mktemp -d)
#   trap 'tests/slurm/cluster.sh down "$dir"' EXIT
#   tests/slurm/cluster.sh up "$dir"
#   source "$dir/env.sh"            # sets SLURM_CONF=$dir/slurm.conf
#   sbatch --wait ...
#
# Everything printed on stdout by `up` is the client environment (shell
# `export` lines), so `eval "$(cluster.sh up DIR)"` works too; progress and
# errors go to stderr.
#
# Tunables (environment):
#   CLUSTER_UP_TIMEOUT   seconds to wait for the node to become idle   [60]
#   CLUSTER_DOWN_WAIT    seconds between SIGTERM and SIGKILL on down   [10]
#   CLUSTER_DEBUG        SlurmctldDebug/SlurmdDebug level              [info]
#   CLUSTER_CRED_EXPIRE  AuthInfo cred_expire (s, >= 5); also the delay
#                        before a requeued job may start again          [5]
#
# Must run as root (the daemons run as root: SlurmUser=root, munged --force).

set -euo pipefail

# Slurm variables inherited from the caller (e.g. a CI job that itself runs
# under Slurm, or SQUEUE_FORMAT-style settings) must not leak into the
# daemons or the sinfo/scontrol calls below.
for _v in $(compgen -e | grep -E '^(SLURM_|SINFO_|SQUEUE_|SBATCH_|SRUN_|SALLOC_)' || true); do
    unset "$_v"
done
unset _v

prog=$(basename "$0")
log() { echo "[$prog] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    echo "usage: $prog up|down DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
action=$1
# Absolute path: it ends up in slurm.conf and in the daemons' command lines
# (which `down` uses to recognise its own processes).
dir=$(realpath -m -- "$2")

up_timeout=${CLUSTER_UP_TIMEOUT:-60}
down_wait=${CLUSTER_DOWN_WAIT:-10}
debug_level=${CLUSTER_DEBUG:-info}
cred_expire=${CLUSTER_CRED_EXPIRE:-5}

# --- Layout under DIR ---------------------------------------------------------
munge_dir=$dir/munge
munge_key=$munge_dir/munge.key
munge_sock=$munge_dir/munge.socket.2
munge_pid=$munge_dir/munged.pid
munge_log=$munge_dir/munged.log
munge_seed=$munge_dir/munged.seed
conf=$dir/slurm.conf
run_dir=$dir/run                 # slurmctld.pid, slurmd.pid
log_dir=$dir/log                 # slurmctld.log, slurmd.log
state_dir=$dir/state             # StateSaveLocation
tmp_dir=$dir/tmp                 # TmpFS (PMIx per-step dirs land here)
spool_dir=$dir/spool             # SlurmdSpoolDir
env_file=$dir/env.sh
ctld_pid=$run_dir/slurmctld.pid
slurmd_pid=$run_dir/slurmd.pid

# Slurm's node name must equal what slurmd thinks its name is; we also pass
# it explicitly with `slurmd -N`, so the short hostname is just a nice label.
node=$(hostname -s 2>/dev/null || hostname)
node=${node:-localhost}

# -----------------------------------------------------------------------------
# Process helpers
# -----------------------------------------------------------------------------

# pid_of FILE: print the pid stored in FILE if that process is alive AND its
# command line mentions DIR (so a recycled pid, or a daemon belonging to some
# other cluster, is never touched).  Prints nothing otherwise.
pid_of() {
    local f=$1 pid
    [ -s "$f" ] || return 0
    pid=$(tr -dc '0-9' <"$f" 2>/dev/null || true)
    [ -n "$pid" ] || return 0
    [ -r "/proc/$pid/cmdline" ] || return 0
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/"; then
        echo "$pid"
    fi
}

# alive PID: the process exists and is not a zombie.  (In containers whose
# PID 1 does not reap orphans, a killed daemon lingers as a zombie, which
# `kill -0` still reports as existing.)
alive() {
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# stop_by_pidfiles NAME=FILE...: SIGTERM every live daemon listed, wait up to
# $down_wait s for all of them, then SIGKILL the survivors.  Each Slurm
# daemon takes ~2 s to notice SIGTERM, so they are stopped together.
stop_by_pidfiles() {
    local spec name f pid i any
    local -a pids=() names=()
    for spec in "$@"; do
        name=${spec%%=*} f=${spec#*=}
        pid=$(pid_of "$f")
        if [ -z "$pid" ]; then
            rm -f -- "$f"      # stale pid file (the daemon removes a live one)
            continue
        fi
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid") names+=("$name")
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    for ((i = 0; i < down_wait * 10; i++)); do
        any=0
        for pid in "${pids[@]}"; do
            alive "$pid" && any=1
        done
        [ "$any" = 1 ] || break
        sleep 0.1
    done
    for i in "${!pids[@]}"; do
        if alive "${pids[$i]}"; then
            log "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for ${down_wait}s: SIGKILL"
            kill -KILL "${pids[$i]}" 2>/dev/null || true
        fi
    done
    sleep 0.2
    for spec in "$@"; do rm -f -- "${spec#*=}"; done
}

# Print the tail of every daemon log (used when `up` fails).
dump_logs() {
    local f
    for f in "$munge_log" "$log_dir/slurmctld.log" "$log_dir/slurmd.log"; do
        [ -f "$f" ] || continue
        echo "------- tail -n 60 $f -------" >&2
        tail -n 60 -- "$f" >&2 || true
    done
    echo "-------" >&2
}

# fail_up MSG: print MSG and the logs, stop whatever was started, exit 1.
fail_up() {
    log "ERROR: $*"
    dump_logs
    do_down || true
    exit 1
}

# -----------------------------------------------------------------------------
# Ports: two free TCP ports (SlurmctldPort, SlurmdPort).  Start from a value
# derived from our PID (so concurrent runs start from different places) in
# 10000..31999, i.e. below Linux's default ephemeral range (32768..60999) so an
# outgoing connection cannot grab the port between probe and bind.  A port
# counts as taken if any TCP socket (listening or connected, leftovers in
# TIME_WAIT included) uses it.
# -----------------------------------------------------------------------------
# used_ports: every local TCP port in use, one per line (from ss when
# present, plus /proc/net/tcp{,6} so that ss is not required).
used_ports() {
    if command -v ss >/dev/null 2>&1; then
        ss -Htan 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]}'
    fi
    # local_address is "HEXIP:HEXPORT"
    awk 'FNR > 1 {split($2, a, ":"); print a[2]}' /proc/net/tcp /proc/net/tcp6 2>/dev/null |
        while read -r hex; do echo $((16#$hex)); done
}

pick_ports() {
    local base p tries used
    used=" $(used_ports | sort -un | tr '\n' ' ') "
    base=$((10000 + ($$ * 37 + RANDOM) % 22000))
    for ((tries = 0; tries < 2000; tries++)); do
        p=$((10000 + (base - 10000 + tries * 2) % 22000))
        if [[ "$used" != *" $p "* && "$used" != *" $((p + 1)) "* ]]; then
            echo "$p $((p + 1))"
            return 0
        fi
    done
    return 1
}

# -----------------------------------------------------------------------------
# down
# -----------------------------------------------------------------------------
do_down() {
    # Best effort: cancel all jobs while the controller is still up, so their
    # slurmstepd processes (which outlive slurmd) exit too.  Bounded.
    if [ -n "$(pid_of "$ctld_pid")" ] && [ -f "$conf" ]; then
        local ids i
        ids=$(SLURM_CONF=$conf timeout 5 squeue -h -o %A 2>/dev/null || true)
        if [ -n "$ids" ]; then
            log "cancelling leftover jobs: $(tr '\n' ' ' <<<"$ids")"
            # shellcheck disable=SC2086
            SLURM_CONF=$conf timeout 5 scancel $ids 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                # finished jobs stay listed until MinJobAge expires; only
                # wait for the ones still running/completing.
                [ -z "$(SLURM_CONF=$conf timeout 5 squeue -h -t R,CG,CF,S -o %A 2>/dev/null || true)" ] && break
                sleep 0.2
            done
        fi
    fi
    # The two Slurm daemons together, then munged (they may still need it
    # while shutting down).
    stop_by_pidfiles slurmd="$slurmd_pid" slurmctld="$ctld_pid"
    stop_by_pidfiles munged="$munge_pid"
    rm -f -- "$munge_sock" "$munge_sock.lock"
}

# -----------------------------------------------------------------------------
# up
# -----------------------------------------------------------------------------
start_munge() {
    mkdir -p -- "$munge_dir"
    # munged refuses insecure paths: the key must be 0600/0400 and owned by
    # us, no directory on the way may be writable by group/other, and the
    # socket directory must be executable ("searchable") by everyone.
    chmod 755 -- "$munge_dir"
    if [ ! -s "$munge_key" ]; then
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$munge_key" >/dev/null
        else
            dd if=/dev/urandom of="$munge_key" bs=1 count=1024 status=none
        fi
    fi
    chmod 600 -- "$munge_key"
    rm -f -- "$munge_sock" "$munge_sock.lock"

    # --force: munged refuses to run as root without it (and would also
    # refuse to reuse a stale socket).  It daemonises on its own.
    munged --force \
        --socket="$munge_sock" \
        --key-file="$munge_key" \
        --pid-file="$munge_pid" \
        --log-file="$munge_log" \
        --seed-file="$munge_seed" ||
        fail_up "munged failed to start"

    # munged forks after it has bound the socket; still, check a real
    # round-trip before going on.
    local i
    for ((i = 0; i < 50; i++)); do
        if munge --socket="$munge_sock" -n 2>/dev/null |
            unmunge --socket="$munge_sock" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    fail_up "munged does not answer on $munge_sock"
}

write_conf() {
    local ctld_port=$1 slurmd_port=$2 cpus mem_mb first_job_id
    # ports are in 10000..32001 -> job ids 1000..44 M (< MaxJobId 67 M), a
    # block of 2000 per port pair.
    first_job_id=$(((ctld_port - 10000) * 2000 + 1000))
    cpus=$(nproc)
    # ~90% of MemTotal (kB) in MB; RealMemory above what slurmd measures would
    # make the node INVALID (config_overrides below also forgives that).
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)

    # An explicit, empty SPANK plugin stack, so that no plugstack.conf from
    # the host (Debian ships /etc/slurm/plugstack.conf, which includes
    # /etc/slurm/plugstack.conf.d/*.conf) can load plugins into our jobs.
    : >"$dir/plugstack.conf"

    cat >"$conf" <<EOF
# Generated by tests/slurm/cluster.sh on $(date -u +%FT%TZ) -- private test cluster.
ClusterName=lockstep-test
# The controller is this host, reached over loopback.  The name in front of
# the parentheses must be this host's (short) name, the address is used to
# connect.
SlurmctldHost=${node}(127.0.0.1)
SlurmctldPort=${ctld_port}
SlurmdPort=${slurmd_port}

# Authentication: our private munged.  AuthInfo=socket= is read by the
# auth/munge and cred/munge plugins in every daemon AND every client command,
# so clients need nothing but SLURM_CONF.  cred_expire (default 120 s, min 5)
# is also the delay before a requeued job may start again -- keep it short.
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${munge_sock},cred_expire=${cred_expire}

# Everyone is root: the CI runs as root and these daemons run as root.
SlurmUser=root
SlurmdUser=root

# Files, all under DIR.
StateSaveLocation=${state_dir}
SlurmdSpoolDir=${spool_dir}
SlurmctldPidFile=${ctld_pid}
SlurmdPidFile=${slurmd_pid}
SlurmctldLogFile=${log_dir}/slurmctld.log
SlurmdLogFile=${log_dir}/slurmd.log
SlurmctldDebug=${debug_level}
SlurmdDebug=${debug_level}
PlugStackConfig=${dir}/plugstack.conf
# mpi/pmix creates TmpFS/spmix_appdir_<uid>_<jobid>.<stepid> for every step.
# With the default /tmp, two clusters on one host (both numbering jobs from
# 1) collide on it and the second step aborts with "File exists".
TmpFS=${tmp_dir}
# Distinct job ids per cluster (ports are unique among live clusters): keeps
# anything else keyed by job id -- Open MPI session dirs and shared-memory
# segments derive from the PMIx namespace slurm.pmix.<jobid>.<stepid> --
# apart when several test clusters run at once.
FirstJobId=${first_job_id}

# No cgroups anywhere: process tracking by /proc parentage, no task binding,
# no accounting.  With these, slurmd does not read cgroup.conf at all.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
# Do not push the submitter's rlimits onto tasks (noisy errors in containers
# where e.g. RLIMIT_MEMLOCK cannot be raised).
PropagateResourceLimits=NONE
MailProg=/bin/true

# MPI: PMIx by default (Debian's Open MPI 4.1 only speaks PMIx; see README).
MpiDefault=pmix

# Scheduling: consumable cores, immediate scheduling, reject impossible jobs
# at submission time instead of leaving them pending forever.
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# batch_sched_delay=0: try to start a batch job right at submission.
# sched_interval=2: the full scheduling pass (default every 60 s) is what
# starts jobs that became eligible by time passing -- e.g. a requeued job
# whose BeginTime (now + cred_expire + 1) has expired; without it a requeued
# job sits ~up to a minute in PENDING(BeginTime).
SchedulerParameters=batch_sched_delay=0,sched_interval=2
EnforcePartLimits=ALL
# Forget finished jobs quickly.  sbatch --wait polls the job after 2 s and
# multiplies its interval by 4 (2, 8, 32 s) while interval < MinJobAge/2
# (integer division), so MinJobAge <= 5 keeps it polling every 2 s.  5 rather
# than 2: a job purged before sbatch's next poll makes sbatch --wait print
# "no longer found" and return 0 whatever the job's exit code; 5 leaves 3 s
# of margin over the 2 s poll.
MinJobAge=5

# Short timeouts so tests and failures are quick.
SlurmctldTimeout=10
SlurmdTimeout=30
MessageTimeout=10
TCPTimeout=5
BatchStartTimeout=10
KillWait=2
InactiveLimit=0
Waittime=0
UnkillableStepTimeout=30
ReturnToService=2
# Trust the node definition below even if slurmd detects a different
# sockets/cores/threads split (e.g. CPUs=nproc on a hyper-threaded CI host
# would otherwise read as "low socket*core count" and drain the node).
SlurmdParameters=config_overrides

NodeName=${node} NodeAddr=127.0.0.1 NodeHostname=${node} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP
EOF
}

write_env() {
    cat >"$env_file" <<EOF
# Client environment for the private Slurm cluster in ${dir}
# (generated by tests/slurm/cluster.sh; source it before sbatch/srun/squeue).
# Drop Slurm variables inherited from the caller: job variables from an outer
# allocation (when the CI itself runs inside a Slurm job, srun would try to
# run inside a job id that does not exist here) and input defaults such as
# SBATCH_PARTITION / SBATCH_ACCOUNT that this cluster does not have.
for _v in \$(compgen -e | grep -E '^(SLURM_|SBATCH_|SRUN_|SALLOC_)' || true); do unset "\$_v"; done; unset _v
export SLURM_CONF=${conf}
# Not read by any library (slurm finds munge through AuthInfo in slurm.conf);
# for scripts that call the munge CLI: munge --socket="\$LOCKSTEP_MUNGE_SOCKET".
export LOCKSTEP_MUNGE_SOCKET=${munge_sock}
export LOCKSTEP_SLURM_DIR=${dir}
EOF
}

do_up() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (daemons run as SlurmUser=root)"
    # slurm.conf has no quoting for paths, and a unix socket path is limited
    # to 107 bytes.
    [[ "$dir" != *[[:space:]]* ]] || die "DIR must not contain whitespace: '$dir'"
    [ "${#munge_sock}" -lt 100 ] || die "DIR path too long for a unix socket: $munge_sock"
    local t
    for t in munged munge unmunge slurmctld slurmd sinfo scontrol squeue scancel; do
        command -v "$t" >/dev/null 2>&1 || die "'$t' not found in PATH"
    done

    mkdir -p -- "$dir"
    # munged insists the socket's directory (and its parents) be searchable
    # by everyone; mktemp -d gives 0700.
    chmod 755 -- "$dir"

    # Leftovers from an earlier (possibly killed) run in the same DIR: stop
    # them; their state is discarded below (slurmctld -c).
    do_down

    mkdir -p -- "$run_dir" "$log_dir" "$state_dir" "$spool_dir" "$tmp_dir"
    chmod 755 -- "$run_dir" "$log_dir" "$state_dir" "$spool_dir"
    chmod 1777 -- "$tmp_dir"    # like /tmp: jobs of any user may use it

    start_munge
    log "munged up (socket $munge_sock)"

    local ports
    ports=$(pick_ports) || fail_up "no free TCP port pair found"
    # shellcheck disable=SC2086
    set -- $ports
    write_conf "$1" "$2"
    log "slurm.conf written: SlurmctldPort=$1 SlurmdPort=$2 node=$node"

    export SLURM_CONF=$conf
    # slurmctld: daemonises by itself; -c = start clean, ignoring any saved
    # state in StateSaveLocation (leftover jobs from a previous run).
    slurmctld -c -f "$conf" || fail_up "slurmctld failed to start"
    local i ok=0
    for ((i = 0; i < up_timeout * 2; i++)); do
        if scontrol ping 2>/dev/null | grep -q 'is UP'; then ok=1; break; fi
        [ -n "$(pid_of "$ctld_pid")" ] || [ "$i" -lt 10 ] || fail_up "slurmctld died"
        sleep 0.5
    done
    [ "$ok" = 1 ] || fail_up "slurmctld not responding after ${up_timeout}s"

    # slurmd: -N pins the node name to the one in slurm.conf.
    slurmd -f "$conf" -N "$node" || fail_up "slurmd failed to start"

    # Wait (bounded) until the node is idle.
    local state=""
    SECONDS=0
    while :; do
        state=$(sinfo -h -N -n "$node" -o %T 2>/dev/null | head -n1 || true)
        [ "$state" = idle ] && break
        if [ "$SECONDS" -ge "$up_timeout" ]; then
            sinfo -N -l >&2 2>&1 || true
            scontrol show node "$node" >&2 2>&1 || true
            fail_up "node $node not idle after ${up_timeout}s (state: '${state:-?}')"
        fi
        if [ -z "$(pid_of "$slurmd_pid")" ] && [ "$SECONDS" -ge 5 ]; then
            fail_up "slurmd died (state: '${state:-?}')"
        fi
        sleep 0.5
    done
    log "cluster up in $dir: node $node idle"

    write_env
    # stdout: the client environment (same as env.sh minus the comments).
    grep -E '^(export|for|unset)' "$env_file"
}

case "$action" in
    up) do_up ;;
    down)
        # Nothing to do if DIR never existed; otherwise stop what is there.
        [ -d "$dir" ] || exit 0
        do_down
        ;;
    *) usage ;;
esac
