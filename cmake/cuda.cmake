# The CUDA backend switch and build. LOCKSTEP_CUDA=AUTO turns it on when nvcc, cuBLAS and NCCL
# are all found, ON fails loudly naming whatever is missing, OFF builds the CPU backend only.
# When on: CUDA is enabled as a language, the kernels/*.cu files are compiled (warnings are
# errors) into the library, and LOCKSTEP_WITH_CUDA is defined for everything that links it.
# Included from the top-level CMakeLists.txt (file scope: enable_language must run there).
set(LOCKSTEP_HAVE_CUDA OFF)
set(LOCKSTEP_CUDA_ARCHS "80;90" CACHE STRING
    "CUDA architectures when CMAKE_CUDA_ARCHITECTURES is not given (80: A100, 90: H100/H200)")
option(LOCKSTEP_CUDA_WERROR "Treat warnings in CUDA sources as errors" ON)

string(TOUPPER "${LOCKSTEP_CUDA}" _lockstep_cuda_mode)
if(_lockstep_cuda_mode MATCHES "^(ON|TRUE|YES|1)$")
  set(_lockstep_cuda_mode ON)
elseif(_lockstep_cuda_mode MATCHES "^(OFF|FALSE|NO|0)$")
  set(_lockstep_cuda_mode OFF)
elseif(NOT _lockstep_cuda_mode STREQUAL "AUTO")
  message(FATAL_ERROR "LOCKSTEP_CUDA must be AUTO, ON or OFF (got '${LOCKSTEP_CUDA}')")
endif()

# Records why the backend cannot be built: fatal when it was required, a status line otherwise.
macro(_lockstep_cuda_missing what)
  if(_lockstep_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "LOCKSTEP_CUDA=ON but ${what}. Install it (or point CMAKE_PREFIX_PATH / "
                        "CUDAToolkit_ROOT / NCCL_ROOT at it), or configure with -DLOCKSTEP_CUDA=OFF.")
  endif()
  message(STATUS "lockstep: CUDA backend OFF (${what})")
  set(_lockstep_cuda_ok OFF)
endmacro()

set(_lockstep_cuda_ok ${_lockstep_cuda_mode})
if(_lockstep_cuda_mode STREQUAL "OFF")
  message(STATUS "lockstep: CUDA backend OFF (LOCKSTEP_CUDA=OFF)")
else()
  set(_lockstep_cuda_ok ON)
  # nvcc is often installed outside PATH.
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "CUDA compiler")
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    _lockstep_cuda_missing("no CUDA compiler (nvcc) was found")
  endif()
endif()

if(_lockstep_cuda_ok)
  # The toolkit that belongs to the nvcc just found, not another one elsewhere on the system.
  if(NOT CUDAToolkit_ROOT)
    get_filename_component(_lockstep_nvcc_dir "${CMAKE_CUDA_COMPILER}" DIRECTORY)
    get_filename_component(CUDAToolkit_ROOT "${_lockstep_nvcc_dir}" DIRECTORY)
  endif()
  find_package(CUDAToolkit)
  if(NOT CUDAToolkit_FOUND)
    _lockstep_cuda_missing("the CUDA toolkit (CUDA runtime headers and libraries) was not found")
  elseif(NOT TARGET CUDA::cublas)
    _lockstep_cuda_missing("cuBLAS (libcublas) was not found in ${CUDAToolkit_LIBRARY_DIR}")
  endif()
endif()

if(_lockstep_cuda_ok)
  # NCCL has no CMake package; it ships in the toolkit's lib/ on this machine.
  find_library(LOCKSTEP_NCCL_LIBRARY nccl
               HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} $ENV{NCCL_HOME} ${CUDAToolkit_LIBRARY_DIR}
                     ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_ROOT}
               PATH_SUFFIXES lib lib64)
  find_path(LOCKSTEP_NCCL_INCLUDE_DIR nccl.h
            HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} $ENV{NCCL_HOME} ${CUDAToolkit_INCLUDE_DIRS}
                  ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_ROOT}
            PATH_SUFFIXES include)
  if(NOT LOCKSTEP_NCCL_LIBRARY AND NOT LOCKSTEP_NCCL_INCLUDE_DIR)
    _lockstep_cuda_missing("NCCL (libnccl and nccl.h) was not found")
  elseif(NOT LOCKSTEP_NCCL_LIBRARY)
    _lockstep_cuda_missing("the NCCL library (libnccl) was not found (nccl.h is in ${LOCKSTEP_NCCL_INCLUDE_DIR})")
  elseif(NOT LOCKSTEP_NCCL_INCLUDE_DIR)
    _lockstep_cuda_missing("the NCCL header (nccl.h) was not found (library: ${LOCKSTEP_NCCL_LIBRARY})")
  endif()
endif()

if(_lockstep_cuda_ok)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES "${LOCKSTEP_CUDA_ARCHS}")
  endif()
  # nvcc compiles host code with the same compiler as the C++ sources.
  if(NOT CMAKE_CUDA_HOST_COMPILER)
    set(CMAKE_CUDA_HOST_COMPILER "${CMAKE_CXX_COMPILER}" CACHE FILEPATH "Host compiler of nvcc")
  endif()
  # One CUDA runtime in the process: the shared one, which cuBLAS and NCCL use as well.
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
  enable_language(CUDA)
  # CMake 3.25 does not know nvcc's C++20 flag yet (nvcc has it since CUDA 12).
  if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  set(CMAKE_CUDA_EXTENSIONS OFF)
  add_library(lockstep_nccl UNKNOWN IMPORTED)
  set_target_properties(lockstep_nccl PROPERTIES IMPORTED_LOCATION "${LOCKSTEP_NCCL_LIBRARY}"
                                                 INTERFACE_INCLUDE_DIRECTORIES "${LOCKSTEP_NCCL_INCLUDE_DIR}")
  set(LOCKSTEP_HAVE_CUDA ON)
  message(STATUS "lockstep: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures "
                 "${CMAKE_CUDA_ARCHITECTURES}, NCCL ${LOCKSTEP_NCCL_LIBRARY})")
endif()

# Adds the CUDA backend to `target` (the core library) when it is on: the .cu files go through
# an object library with their own flags, so the host-only usage requirements of the core
# library (MPI, HDF5, -march=native) never reach nvcc.
function(lockstep_add_cuda target)
  if(NOT LOCKSTEP_HAVE_CUDA)
    return()
  endif()
  file(GLOB _cu_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/*.cu)
  add_library(lockstep_cuda_kernels OBJECT ${_cu_sources})
  target_include_directories(lockstep_cuda_kernels PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR})
  target_compile_definitions(lockstep_cuda_kernels PRIVATE LOCKSTEP_WITH_CUDA=1)
  target_link_libraries(lockstep_cuda_kernels PRIVATE CUDA::cudart CUDA::cublas lockstep_nccl)
  set(_werror "")
  if(LOCKSTEP_CUDA_WERROR)
    set(_werror --Werror=all-warnings -Xcompiler=-Werror)
  endif()
  target_compile_options(lockstep_cuda_kernels PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wshadow --display-error-number ${_werror}>)
  target_sources(${target} PRIVATE $<TARGET_OBJECTS:lockstep_cuda_kernels>)
  target_compile_definitions(${target} PUBLIC LOCKSTEP_WITH_CUDA=1)
  target_link_libraries(${target} PUBLIC CUDA::cudart CUDA::cublas lockstep_nccl)
endfunction()
