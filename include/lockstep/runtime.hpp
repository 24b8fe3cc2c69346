// Per-process numeric and threading setup, done once at start on every rank: flush-to-zero and
// denormals-are-zero (subnormal floats are very slow on x86 and carry no useful signal here),
// and one BLAS thread per rank unless the user set OPENBLAS_NUM_THREADS.
#pragma once
#include <string>

namespace lockstep {

void enable_flush_to_zero();
bool flush_to_zero_enabled();
// Returns the number of BLAS threads in effect.
int configure_blas_threads();

// Versions of the libraries and backends compiled in, one per line.
std::string build_info();

}  // namespace lockstep
