// Flush-to-zero and BLAS thread setup (see runtime.hpp).
#include <cblas.h>

#include <cstdlib>

#include "lockstep/runtime.hpp"
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace lockstep {

namespace {
constexpr unsigned kFtz = 0x8000;  // MXCSR flush-to-zero
constexpr unsigned kDaz = 0x0040;  // MXCSR denormals-are-zero
}  // namespace

void enable_flush_to_zero() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr(_mm_getcsr() | kFtz | kDaz);
#endif
}

bool flush_to_zero_enabled() {
#if defined(__x86_64__) || defined(__i386__)
  return (_mm_getcsr() & (kFtz | kDaz)) == (kFtz | kDaz);
#else
  return false;
#endif
}

int configure_blas_threads() {
  const char* env = std::getenv("OPENBLAS_NUM_THREADS");
  if (!env || !*env) openblas_set_num_threads(1);
  return openblas_get_num_threads();
}

}  // namespace lockstep
