//! Build script of `libmpi_abi.so`: sets the soname required by the MPI standard ABI
//! (MPI 5.0, chapter "Application Binary Interface": library `mpi_abi`, ABI version 1).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmpi_abi.so.1");
}
