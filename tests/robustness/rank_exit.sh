#!/usr/bin/env bash
# Runs one rank of a job and records its exit code: rank_exit.sh DIR PROGRAM ARGS... writes the
# code to DIR/rank.R (R from Open MPI's or a PMI's rank variable), then exits with it.
dir=$1
shift
"$@"
rc=$?
echo "$rc" >"$dir/rank.${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-${SLURM_PROCID:-x}}}"
exit "$rc"
