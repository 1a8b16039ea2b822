//! # tocsin-mpi — the MPI standard ABI on tocsin
//!
//! Builds `libmpi_abi.so.1`, the library of the MPI 5.0 standard ABI (chapter "Application
//! Binary Interface"): an MPI program compiled against the standard `mpi.h` (this crate's
//! `include/mpi.h`, or another implementation's `mpicc_abi`) runs on tocsin unchanged, its
//! communications progressing by tocsin's interrupts.
//!
//! Owns the C surface only: handle encoding, argument checking, MPI error classes and
//! handlers, datatypes. Everything that moves data goes through the `tocsin` crate's API
//! (communicators, requests, collectives); nothing here touches rings, headers or
//! transports.
//!
//! ## The exported functions
//! Every `MPI_` function of the standard ABI (`abi/functions.txt`) is exported with its
//! `PMPI_` twin by code that `build.rs` generates (module `exports`): `MPI_Xxx` calls
//! `PMPI_Xxx`; `PMPI_Xxx` is either hand-written somewhere under `src/` (see
//! [`abi_info`] for the model) or a stub answering `MPI_ERR_UNSUPPORTED_OPERATION`
//! ([`unsupported`]).

#![allow(clippy::missing_safety_doc)]

pub mod abi;
pub mod abi_info;
pub mod attr;
pub mod coll;
pub mod comm;
pub mod datatype;
pub mod errh;
pub mod error;
pub mod group;
pub mod handle;
pub mod icoll;
pub mod info;
pub mod init;
pub mod op;
pub mod p2p;
pub mod persistent;
pub mod probe;
pub mod request;
pub mod status;
pub mod topo;
pub mod types;
pub mod unsupported;
pub mod wait;

/// The generated `MPI_`/`PMPI_` exports (see `build.rs`).
#[allow(non_snake_case, clippy::too_many_arguments)]
pub mod exports {
    include!(concat!(env!("OUT_DIR"), "/exports.rs"));
}
