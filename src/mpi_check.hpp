// LOCKSTEP_MPI_CHECK: an MPI call whose failure becomes an Error with MPI's own message (the
// communicators return errors rather than aborting). Private to the files that call MPI.
#pragma once
#include <mpi.h>

#include "lockstep/check.hpp"

#define LOCKSTEP_MPI_CHECK(call)                                                 \
  do {                                                                           \
    const int lockstep_mpi_rc_ = (call);                                         \
    if (lockstep_mpi_rc_ != MPI_SUCCESS) {                                       \
      char lockstep_mpi_msg_[MPI_MAX_ERROR_STRING];                              \
      int lockstep_mpi_len_ = 0;                                                 \
      MPI_Error_string(lockstep_mpi_rc_, lockstep_mpi_msg_, &lockstep_mpi_len_); \
      LOCKSTEP_CHECK(false, "MPI error: ", lockstep_mpi_msg_);                   \
    }                                                                            \
  } while (0)
