// The one macro for math shared by the CPU loops and the CUDA kernels.
// Element functions marked LOCKSTEP_HD are the single copy of each formula.
#pragma once
#if defined(__CUDACC__)
#define LOCKSTEP_HD __host__ __device__ __forceinline__
#else
#define LOCKSTEP_HD inline
#endif

#include <cmath>

namespace lockstep {

// Overloads so each element function is written once as a template and instantiated in float
// for the kernels and in double for the gradient checks. (CUDA device code has the same names.)
LOCKSTEP_HD float math_exp(float x) { return expf(x); }
LOCKSTEP_HD double math_exp(double x) { return exp(x); }
LOCKSTEP_HD float math_log(float x) { return logf(x); }
LOCKSTEP_HD double math_log(double x) { return log(x); }
LOCKSTEP_HD float math_tanh(float x) { return tanhf(x); }
LOCKSTEP_HD double math_tanh(double x) { return tanh(x); }
LOCKSTEP_HD float math_erf(float x) { return erff(x); }
LOCKSTEP_HD double math_erf(double x) { return erf(x); }
LOCKSTEP_HD float math_sqrt(float x) { return sqrtf(x); }
LOCKSTEP_HD double math_sqrt(double x) { return sqrt(x); }

}  // namespace lockstep
