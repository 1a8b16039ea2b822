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

#![allow(clippy::missing_safety_doc)]
pub mod datatype;
