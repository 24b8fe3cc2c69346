#!/usr/bin/env bash
# Installs the Debian packages lockstep needs, and only those that are missing.
# Idempotent: a second run installs nothing. Uses sudo when not run as root.
# Usage: scripts/install-deps.sh [--with-slurm] [--with-peers] [--with-fuzz]
set -euo pipefail

pkgs=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev libhdf5-dev hdf5-tools
      libopenblas-dev zlib1g-dev libgtest-dev libcli11-dev libtomlplusplus-dev
      nlohmann-json3-dev dataset-fashion-mnist)
for arg in "$@"; do
  case "$arg" in
    --with-slurm) pkgs+=(slurm-wlm slurm-client munge) ;;
    --with-peers) pkgs+=(python3-torch python3-h5py python3-matplotlib python3-numpy) ;;
    --with-fuzz)  pkgs+=(clang libclang-rt-14-dev) ;;
    *) echo "install-deps: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A stale package index is the usual cause of 404s on a fresh machine: refresh it first.
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
