//! `tocsin run` (being written).
#[derive(clap::Args, Debug)]
pub struct RunArgs {}
pub fn main(_a: RunArgs) -> std::process::ExitCode { todo!() }
