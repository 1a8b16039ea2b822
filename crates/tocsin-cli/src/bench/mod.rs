//! `tocsin bench` (being written).
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}
pub fn main(_a: BenchArgs) -> std::process::ExitCode { todo!() }
