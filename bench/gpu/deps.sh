#!/usr/bin/env bash
# The build dependencies of bench/gpu/check.sh for a GPU machine that has the CUDA toolkit but no
# package registry (and may lack MPI, HDF5 and the rest): fetched here as Debian 12 packages,
# unpacked there into a prefix of their own, never over the machine's /.
#   bench/gpu/deps.sh fetch            # here: .gpu-deps/debs/*.deb and .gpu-deps/fashion-mnist/
#   eval "$(bench/gpu/deps.sh unpack)"  # there: unpacks into /tmp/lockstep-deps, prints the exports
#   bench/gpu/check.sh
# .gpu-deps is ignored by git; name it in the device tool's `carry`. About 59 MiB in all (30 of
# them Fashion-MNIST), leaving room for the repository inside the 64 MiB a device call takes.
# Environment: LOCKSTEP_DEPS_DIR (where fetch puts them, default .gpu-deps in the repository),
# LOCKSTEP_DEPS_ROOT (where unpack unpacks, default /tmp/lockstep-deps).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${LOCKSTEP_DEPS_DIR:-$root/.gpu-deps}
dest=${LOCKSTEP_DEPS_ROOT:-/tmp/lockstep-deps}

# What CMakeLists.txt finds (MPI, HDF5 with its h5cc, OpenBLAS, zlib, GTest, CLI11, toml++,
# nlohmann-json) and the shared libraries they load that a CUDA image may not have.
packages=(
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libpmix2 libhwloc15 libevent-core-2.1-7
  libevent-pthreads-2.1-7 libfabric1 libucx0 libibverbs1 librdmacm1 libpsm2-2 libpsm-infinipath1
  libnl-3-200 libnl-route-3-200 libmunge2
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libhdf5-cpp-103-1 hdf5-helpers libsz2 libaec0
  libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 libgfortran5
  zlib1g-dev libgtest-dev libcli11-dev libtomlplusplus-dev libtomlplusplus3 nlohmann-json3-dev
)
# Libraries those load that most systems have (curl, TLS, Kerberos, LDAP for HDF5's ros3
# driver): unpacked aside, and used only for the names the machine does not have itself.
# (Not carried, to stay inside the 64 MiB a device call takes: OpenSSL 3, zstd, gmp, p11-kit,
# libffi and libudev, which any image with Python and PyTorch has.)
fallback=(
  libcurl4 libnghttp2-14 libidn2-0 librtmp1 libssh2-1 libpsl5 libgssapi-krb5-2 libldap-2.5-0
  libbrotli1 libunistring2 libgnutls30 libhogweed6 libnettle8 libkrb5-3 libk5crypto3
  libcom-err2 libkrb5support0 libsasl2-2 libtasn1-6 libkeyutils1 libnuma1 libquadmath0 libatomic1
)

fetch() {
  mkdir -p "$dir/debs" "$dir/fallback" "$dir/fashion-mnist"
  (cd "$dir/debs" && apt-get download "${packages[@]}")
  (cd "$dir/fallback" && apt-get download "${fallback[@]}")
  local fm=/usr/share/datasets/fashion-mnist
  for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    cp "$fm/$f" "$dir/fashion-mnist/$f"
  done
  du -sh "$dir" >&2
}

extract() {  # extract DEB DIR
  if command -v dpkg >/dev/null; then
    dpkg -x "$1" "$2"
  else  # a .deb is an ar archive holding data.tar.xz (or .zst)
    local member
    member=$(ar t "$1" | grep '^data\.tar')
    (cd "$2" && ar p "$1" "$member" | tar -x -J -f - 2>/dev/null || ar p "$1" "$member" | tar -x --zstd -f -)
  fi
}

unpack() {
  mkdir -p "$dest/fallback"
  local deb
  for deb in "$dir"/debs/*.deb; do extract "$deb" "$dest"; done
  for deb in "$dir"/fallback/*.deb; do extract "$deb" "$dest/fallback"; done
  local usr=$dest/usr lib=$dest/usr/lib/x86_64-linux-gnu
  # What Debian's maintainer scripts would add (update-alternatives): the plain names of the MPI
  # wrappers and the libraries behind them.
  local w
  for w in mpicc mpicxx mpic++ mpiCC mpirun mpiexec; do ln -sf "$w.openmpi" "$usr/bin/$w"; done
  for w in "$lib"/openmpi/lib/libmpi*.so*; do ln -sf "openmpi/lib/$(basename "$w")" "$lib/$(basename "$w")"; done
  for w in libblas.so libblas.so.3 liblapack.so liblapack.so.3; do
    [ -e "$lib/openblas-pthread/$w" ] && ln -sf "openblas-pthread/$w" "$lib/$w"
  done
  # h5cc names the install paths of the package: point them at this prefix.
  sed -i "s|^prefix=.*|prefix=\"$usr\"|; s|^exec_prefix=.*|exec_prefix=\"$usr\"|; s|^libdir=.*|libdir=\"$lib\"|; s|^includedir=.*|includedir=\"$usr/include\"|; s|-I/usr/include|-I$usr/include|g; s|-L/usr/lib|-L$usr/lib|g; s| /usr/lib/x86_64-linux-gnu| $lib|g" "$usr/bin/h5cc"
  # The machine's own libraries first: a fallback one is linked into missing/ only when a library
  # of the prefix needs a name the machine cannot resolve, until nothing is left unresolved.
  local paths=$lib/openmpi/lib:$lib/openblas-pthread:$lib/hdf5/serial:$lib:$lib/missing
  mkdir -p "$lib/missing"
  local round name found
  for round in 1 2 3 4 5 6; do
    local added=0
    while read -r name; do
      found=$(find "$dest/fallback" -name "$name" \( -type f -o -type l \) | head -n 1)
      if [ -n "$found" ] && [ ! -e "$lib/missing/$name" ]; then ln -s "$found" "$lib/missing/$name"; added=1; fi
    done < <(find "$lib" "$usr/bin" \( -name '*.so*' -o -perm -u+x \) -type f -print0 |
             xargs -0 env LD_LIBRARY_PATH="$paths" ldd 2>/dev/null | awk '/not found/ {print $1}' | sort -u)
    [ "$added" = 1 ] || break
  done
  local unresolved
  unresolved=$(find "$lib" -name '*.so*' -type f -print0 | xargs -0 env LD_LIBRARY_PATH="$paths" ldd 2>/dev/null |
               awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
  [ -z "$unresolved" ] || echo "deps.sh: still unresolved (their users will not load): $unresolved" >&2
  echo "deps.sh: $(ls "$lib/missing" | wc -l) fallback librar(ies) used: $(ls "$lib/missing" | tr '\n' ' ')" >&2
  echo "export LOCKSTEP_DEPS_PREFIX=$usr"
  echo "export OPAL_PREFIX=$usr"
  echo "export LD_LIBRARY_PATH=$paths\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
  echo "export FASHION_MNIST_DIR=$dir/fashion-mnist"
}

case ${1:-} in
  fetch) fetch ;;
  unpack) unpack ;;
  *) echo "usage: bench/gpu/deps.sh fetch|unpack   (see the top of this file)" >&2; exit 2 ;;
esac
