// The gradient communicator of the CUDA backend: allreduce_sum(float*) works on DEVICE buffers,
// with NCCL on its own stream, ordered after the backend's queued work, and waits for the result
// while polling NCCL for asynchronous errors (an error or a timeout aborts the communicator and
// throws, instead of hanging). Every other method acts on host memory through the MPI comm.
#pragma once
#include <iosfwd>
#include <memory>

#include "lockstep/backend.hpp"
#include "lockstep/comm.hpp"

namespace lockstep {

// Collective over host_comm (every rank calls it; rank 0 creates the NCCL unique id and
// broadcasts it). backend must be this rank's CUDA backend. On one rank no NCCL communicator is
// made and the allreduce is a no-op. Ranks that share a GPU (run.allow_shared_gpu) cannot use
// NCCL: their allreduce copies through host memory and MPI instead. Rank 0 writes one line to
// log (may be null) saying which. timeout_s bounds the wait for initialisation and for each
// collective. Throws Error in builds without CUDA.
std::unique_ptr<Comm> make_nccl_comm(Comm& host_comm, Backend& backend, std::ostream* log = nullptr,
                                     double timeout_s = 300.0);

}  // namespace lockstep
