#!/usr/bin/env bash
# Installs tocsin's MPI (the MPI 5.0 standard ABI) for C and C++ programs into PREFIX (default
# <repo>/target/mpi), from an existing release build (`cargo build --release --workspace`):
#
#   PREFIX/lib/libmpi_abi.so.1   (+ libmpi_abi.so -> libmpi_abi.so.1)   the library
#   PREFIX/include/mpi.h                                              the standard ABI header
#   PREFIX/bin/mpicc, mpicxx (mpic++)   compiler wrappers (scripts/mpi/mpicc; -show prints)
#   PREFIX/bin/mpiexec (mpirun)         launcher wrapper (scripts/mpi/mpiexec)
#   PREFIX/bin/tocsin                   the launcher itself (target/release/tocsin)
#   PREFIX/lib/pkgconfig/mpi.pc (mpi-c.pc, mpi-cxx.pc, mpi_abi.pc)   relocatable (${pcfiledir})
#
# usage: bash scripts/mpi/install.sh [PREFIX]
#   TOCSIN_BUILD_DIR   where the build is (default <repo>/target/release, or
#                      $CARGO_TARGET_DIR/release)
#
# Relocatable (the wrappers find PREFIX from their own path) and idempotent: a file already
# identical is left alone, others are replaced by an atomic rename (a running program keeps
# its old copy). Concurrent installs into one PREFIX are serialized with flock.
# Exit status: 0 installed; 1 the build is missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PREFIX=${1:-$REPO/target/mpi}
if [ -n "${TOCSIN_BUILD_DIR:-}" ]; then
  BUILD=$TOCSIN_BUILD_DIR
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then
  BUILD=$CARGO_TARGET_DIR/release
else
  BUILD=$REPO/target/release
fi

for f in "$BUILD/libmpi_abi.so" "$BUILD/tocsin"; do
  if [ ! -f "$f" ]; then
    echo "install.sh: $f not found: run 'cargo build --release --workspace' first" >&2
    exit 1
  fi
done

mkdir -p "$PREFIX"/{bin,lib/pkgconfig,include}
PREFIX=$(cd "$PREFIX" && pwd)

if command -v flock >/dev/null 2>&1; then
  exec 9>"$PREFIX/.install.lock"
  flock 9
fi

# put SRC DEST MODE: copy unless identical, through a temporary file and a rename.
put() {
  local src=$1 dest=$2 mode=$3
  if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s "$src" "$dest"; then
    chmod "$mode" "$dest"
    return
  fi
  local tmp
  tmp=$(mktemp "$dest.XXXXXX")
  cp "$src" "$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$dest"
}
# link TARGET NAME: a relative symlink, replaced only when it points elsewhere.
link() {
  local target=$1 name=$2
  if [ -L "$name" ] && [ "$(readlink "$name")" = "$target" ]; then
    return
  fi
  ln -sfn "$target" "$name.tmp$$"
  mv -fT "$name.tmp$$" "$name"
}

put "$BUILD/libmpi_abi.so" "$PREFIX/lib/libmpi_abi.so.1" 755
link libmpi_abi.so.1 "$PREFIX/lib/libmpi_abi.so"
put "$REPO/crates/tocsin-mpi/include/mpi.h" "$PREFIX/include/mpi.h" 644
put "$BUILD/tocsin" "$PREFIX/bin/tocsin" 755
put "$HERE/mpicc" "$PREFIX/bin/mpicc" 755
link mpicc "$PREFIX/bin/mpicxx"
link mpicc "$PREFIX/bin/mpic++"
put "$HERE/mpiexec" "$PREFIX/bin/mpiexec" 755
link mpiexec "$PREFIX/bin/mpirun"

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n1)
pc=$(mktemp)
cat >"$pc" <<PC
# tocsin's MPI: the MPI 5.0 standard ABI (libmpi_abi.so.1). Relocatable.
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: mpi
Description: tocsin MPI (MPI 5.0 standard ABI, libmpi_abi.so.1)
Version: ${version:-0}
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lmpi_abi
PC
for name in mpi mpi-c mpi-cxx mpi_abi; do
  put "$pc" "$PREFIX/lib/pkgconfig/$name.pc" 644
done
rm -f "$pc"

echo "install.sh: tocsin MPI installed in $PREFIX (bin/mpicc, bin/mpiexec, lib/libmpi_abi.so.1, include/mpi.h)"
