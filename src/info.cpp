// `lockstep info`: what this build contains and what it runs on.
#include <cblas.h>
#include <hdf5.h>
#include <mpi.h>

#include <sstream>

#include "lockstep/device.hpp"
#include "lockstep/runtime.hpp"
#include "lockstep/version.hpp"

namespace lockstep {

std::string build_info() {
  std::ostringstream os;
  os << "lockstep " << LOCKSTEP_VERSION_STRING << " (" << LOCKSTEP_BUILD_TYPE << ")\n";
  os << "backends: cpu";
#ifdef LOCKSTEP_WITH_CUDA
  os << ", cuda";
#endif
  os << "\n";
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  std::string mpi_s(mpi, static_cast<size_t>(len));
  if (auto nl = mpi_s.find_first_of("\n,"); nl != std::string::npos) mpi_s = mpi_s.substr(0, nl);
  os << "MPI: " << mpi_s << "\n";
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  os << "HDF5: " << maj << "." << min << "." << rel << "\n";
  os << "BLAS: " << openblas_get_config() << " (" << openblas_get_num_threads() << " threads)\n";
  os << cuda_info();
  return os.str();
}

}  // namespace lockstep
