# Sourced by the launch scripts: sets MPI_FLAGS for `mpirun -np $1` on this machine.
# Open MPI refuses to start as root without --allow-run-as-root, and more ranks than cores
# without --oversubscribe.
lockstep_mpi_flags() {
  local np=$1
  MPI_FLAGS=()
  if mpirun --version 2>/dev/null | grep -q "Open MPI"; then
    [ "$(id -u)" -eq 0 ] && MPI_FLAGS+=(--allow-run-as-root)
    [ "$np" -gt "$(nproc)" ] && MPI_FLAGS+=(--oversubscribe)
  fi
  return 0
}
