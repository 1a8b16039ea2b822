//! `tocsin run`: starts N local ranks, serves PMI-1 to them (being written).
#![allow(dead_code, unused_variables)]

use std::ffi::OsString;
use std::path::PathBuf;

/// Arguments of `tocsin run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {}

/// How ranks are bound to cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bind {
    /// One core per rank, round-robin over the cores hwloc reports.
    Core,
    /// No binding.
    None,
}

/// A job to start: `n` ranks of `program args…`, with extra environment variables.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub n: u32,
    pub bind: Bind,
    pub tag_output: bool,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
}

/// Errors of the launcher.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}")]
    Other(String),
}

/// Runs the job to completion: spawns the ranks, serves PMI-1, forwards output and signals.
/// Returns the job's exit code: 0 if every rank exited 0, otherwise the first failing
/// rank's code (128+signal if it was killed); the other ranks are then terminated.
pub fn launch(spec: &LaunchSpec) -> Result<i32, LaunchError> {
    todo!()
}

pub fn main(_a: RunArgs) -> std::process::ExitCode {
    todo!()
}
