// Checking macros for CUDA runtime, cuBLAS and NCCL calls (CUDA builds only). A failed call throws
// lockstep::Error naming the library's error code and text, the expression and file:line (main
// adds rank and host). Kernel launches are checked with LOCKSTEP_CUDA_CHECK_LAUNCH right after
// the launch; faults inside a kernel surface at the next checked synchronisation.
#pragma once
#ifndef LOCKSTEP_WITH_CUDA
#error "lockstep/cuda_check.hpp is only for builds with the CUDA backend"
#endif
#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <string>

#include "lockstep/check.hpp"

#define LOCKSTEP_CUDA_CHECK(call)                                                                        \
  do {                                                                                                   \
    const cudaError_t lockstep_cuda_rc_ = (call);                                                        \
    if (lockstep_cuda_rc_ != cudaSuccess)                                                                \
      ::lockstep::throw_check_failure(#call, __FILE__, __LINE__,                                         \
                                      ::lockstep::fmt("CUDA error ", cudaGetErrorName(lockstep_cuda_rc_), \
                                                      ": ", cudaGetErrorString(lockstep_cuda_rc_)));     \
  } while (0)

// Right after a <<<...>>> launch: a bad configuration (grid, block, shared memory) or an earlier
// asynchronous fault is reported here, at the launch's file:line.
#define LOCKSTEP_CUDA_CHECK_LAUNCH() LOCKSTEP_CUDA_CHECK(cudaGetLastError())

#define LOCKSTEP_CUBLAS_CHECK(call)                                                                    \
  do {                                                                                                 \
    const cublasStatus_t lockstep_cublas_rc_ = (call);                                                 \
    if (lockstep_cublas_rc_ != CUBLAS_STATUS_SUCCESS)                                                  \
      ::lockstep::throw_check_failure(#call, __FILE__, __LINE__,                                       \
                                      ::lockstep::fmt("cuBLAS error ", static_cast<int>(lockstep_cublas_rc_), \
                                                      ": ", cublasGetStatusString(lockstep_cublas_rc_))); \
  } while (0)

namespace lockstep::detail {
// NCCL's text for a result code, with the detail of the last failure when NCCL recorded one.
inline std::string nccl_error_text(ncclResult_t rc) {
  std::string s = fmt("NCCL error ", static_cast<int>(rc), ": ", ncclGetErrorString(rc));
  const char* last = ncclGetLastError(nullptr);
  if (last && *last) s += fmt(" (", last, ")");
  return s;
}
}  // namespace lockstep::detail

#define LOCKSTEP_NCCL_CHECK(call)                                                                 \
  do {                                                                                            \
    const ncclResult_t lockstep_nccl_rc_ = (call);                                                \
    if (lockstep_nccl_rc_ != ncclSuccess)                                                         \
      ::lockstep::throw_check_failure(#call, __FILE__, __LINE__,                                  \
                                      ::lockstep::detail::nccl_error_text(lockstep_nccl_rc_));    \
  } while (0)
