// The CUDA backend (CUDA builds only): one GPU, one stream, cuBLAS for the GEMMs and the kernels
// of kernels/*_cuda.cu for the rest. make_backend (device.hpp) chooses the GPU of each rank;
// tests and benchmarks may create one directly. The NCCL communicator orders its collectives
// after the work on the backend's stream through cuda_context_of.
#pragma once
#ifndef LOCKSTEP_WITH_CUDA
#error "lockstep/cuda_backend.hpp is only for builds with the CUDA backend"
#endif
#include <cuda_runtime_api.h>

#include <memory>

#include "lockstep/backend.hpp"

namespace lockstep {

// A backend on GPU `device` (an index among the GPUs this process sees). tf32: let cuBLAS use
// TF32 tensor cores for the fp32 GEMMs (faster, about 1e-3 relative error per product).
std::unique_ptr<Backend> make_cuda_backend(int device, bool tf32);

struct CudaContext {
  int device = 0;
  cudaStream_t stream = nullptr;  // every kernel, copy and GEMM of the backend runs on it
};

// The GPU and stream of a CUDA backend; throws Error for any other backend.
CudaContext cuda_context_of(Backend& backend);

}  // namespace lockstep
