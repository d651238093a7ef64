#!/usr/bin/env bash
# Installs PermFS's build and test dependencies from Debian packages, if any are missing.
# Usage: scripts/install-deps.sh [extra-package ...]
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
      libgtest-dev libgmock-dev libbenchmark-dev libssl-dev liburing-dev
      libfuse3-dev fuse3 liblz4-dev libzstd-dev qemu-system-x86 e2fsprogs
      attr acl git python3 g++-aarch64-linux-gnu stress-ng "$@")
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
