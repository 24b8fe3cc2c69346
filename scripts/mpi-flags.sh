# Sourced by the launch scripts: what this machine offers mpirun. lockstep_cores counts the
# physical cores this process may use; lockstep_gpus the NVIDIA GPUs the ranks will see;
# lockstep_mpi_flags sets MPI_FLAGS for `mpirun -np $1`. Open MPI refuses to start as root
# without --allow-run-as-root, and more ranks than cores (its default slots) without
# --oversubscribe.

# Physical cores among the CPUs this process may run on (hyper-threads of one core count once);
# nproc when lscpu is missing.
lockstep_cores() {
  local allowed n
  allowed=$(awk '/^Cpus_allowed_list:/ {print $2}' /proc/self/status 2>/dev/null)
  if command -v lscpu >/dev/null 2>&1 && [ -n "$allowed" ]; then
    n=$(lscpu -p=CPU,Core,Socket 2>/dev/null | awk -F, -v list="$allowed" '
      BEGIN { k = split(list, parts, ","); for (i = 1; i <= k; i++) { m = split(parts[i], r, "-");
              lo = r[1]; hi = (m > 1) ? r[2] : r[1]; for (c = lo; c <= hi; c++) ok[c] = 1 } }
      /^#/ { next }
      ($1 in ok) && !seen[$3 "," $2]++ { n++ }
      END { print n + 0 }')
    if [ "${n:-0}" -gt 0 ]; then echo "$n"; return 0; fi
  fi
  nproc
}

# NVIDIA GPUs the ranks will see: the GPU lines of `nvidia-smi -L` (0 when it is missing or
# fails, e.g. without a driver), no more than CUDA_VISIBLE_DEVICES lists when that is set.
lockstep_gpus() {
  local n=0 out visible
  if out=$(nvidia-smi -L 2>/dev/null); then n=$(grep -c '^GPU ' <<<"$out") || n=0; fi
  if [ "$n" -gt 0 ] && [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then
    visible=$(tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES" | grep -c '[^[:space:]]') || visible=0
    [ "$visible" -lt "$n" ] && n=$visible
  fi
  echo "$n"
}

lockstep_mpi_flags() {
  local np=$1
  MPI_FLAGS=()
  if mpirun --version 2>/dev/null | grep -q "Open MPI"; then
    [ "$(id -u)" -eq 0 ] && MPI_FLAGS+=(--allow-run-as-root)
    [ "$np" -gt "$(lockstep_cores)" ] && MPI_FLAGS+=(--oversubscribe)
  fi
  return 0
}

# lockstep_mpirun ARGS...: runs `mpirun ARGS...` and returns its status. SIGTERM, SIGINT (Ctrl-C),
# SIGHUP (the terminal closed) or SIGQUIT to the launcher reach the ranks as SIGUSR1, which mpirun
# forwards: every rank saves a checkpoint at the next step boundary and the job exits 75, ready
# for --resume auto. (mpirun itself answers SIGTERM and SIGINT by killing the ranks a second later
# and exits 1, so it runs in a process group of its own, out of reach of a terminal's Ctrl-C.)
# The request goes to mpirun once its ranks catch SIGUSR1: mpirun drops a signal that comes before
# it has ranks, and one that reaches a rank before lockstep's handler is in ends that rank.
# Repeated signals change nothing. To stop at once, signal mpirun itself. (SIGKILL to the
# launcher leaves mpirun running.)
lockstep_mpirun() {
  local rc=0
  _lockstep_stop_pending=0 _lockstep_mpirun_pid=
  # In place before mpirun starts, so that no signal can end the launcher and leave mpirun behind.
  trap '_lockstep_stop_pending=1
        echo "launcher: stopping at the next step boundary, after a checkpoint (exit code 75)" >&2 2>/dev/null || true' \
    TERM INT HUP QUIT
  set -m
  mpirun "$@" </dev/null &
  _lockstep_mpirun_pid=$!
  set +m
  trap '' PIPE  # only now (an ignored signal would be passed on to mpirun): a closed log pipe must not end the launcher
  # wait returns early (status > 128) each time a trapped signal arrives; the job's own status
  # comes from the last wait, once mpirun has ended.
  while kill -0 "$_lockstep_mpirun_pid" 2>/dev/null; do
    if [ "$_lockstep_stop_pending" = 1 ]; then
      if _lockstep_ranks_catch_usr1 "$_lockstep_mpirun_pid"; then
        kill -USR1 "$_lockstep_mpirun_pid" 2>/dev/null || true
        _lockstep_stop_pending=2
      else
        sleep 0.1
      fi
    else
      wait "$_lockstep_mpirun_pid" || true
    fi
  done
  wait "$_lockstep_mpirun_pid" || rc=$?
  trap - TERM INT HUP QUIT PIPE
  return "$rc"
}

# _lockstep_ranks_catch_usr1 PID: mpirun PID has child processes (its ranks, on this machine),
# and each has a handler for SIGUSR1 (bit 10 of SigCgt in /proc/PID/status).
_lockstep_ranks_catch_usr1() {
  local child mask found=0
  for child in $(pgrep -P "$1" 2>/dev/null); do
    mask=$(awk '/^SigCgt:/ {print $2}' "/proc/$child/status" 2>/dev/null) || continue
    [ -n "$mask" ] || continue
    found=1
    (( 16#$mask & 0x200 )) || return 1
  done
  [ "$found" = 1 ]
}
