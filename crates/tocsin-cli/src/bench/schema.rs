//! The JSON documents of the benchmarks: exactly the schema the reference programs in
//! `bench/peers/*.c` print, plus `"mode"` (the progress mode) in ours.
//!
//! The same types read `--compare` files, so a document from MPICH, Open MPI or another
//! tocsin run can be overlaid on a plot.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{BResult, BenchError};

/// `{"impl","bench":"pingpong","mode","rounds","results":[...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingpongDoc {
    /// Implementation, e.g. `"tocsin 0.1.0"`, `"MPICH 4.0.2"`.
    #[serde(rename = "impl")]
    pub impl_: String,
    /// `"pingpong"`.
    pub bench: String,
    /// Progress mode (tocsin only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Rounds per size (the median round is reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u64>,
    /// One row per size.
    pub results: Vec<PingpongRow>,
}

/// One message size of a ping-pong.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingpongRow {
    /// Message size.
    pub bytes: u64,
    /// Timed round trips.
    pub iters: u64,
    /// One-way latency (round trip / 2), µs.
    pub latency_us: f64,
    /// `bytes / latency_us`, MB/s (10^6 B/s); 0 for 0 bytes.
    #[serde(rename = "bandwidth_MBps")]
    pub bandwidth_mbps: f64,
}

/// `{"impl","bench":"overlap","mode","lat0_us","reps","results":[...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverlapDoc {
    /// Implementation.
    #[serde(rename = "impl")]
    pub impl_: String,
    /// `"overlap"`.
    pub bench: String,
    /// Progress mode (tocsin only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Median one-way latency of a 0-byte ping-pong, subtracted from every time, µs.
    pub lat0_us: f64,
    /// Timed repetitions per point (the median is used).
    pub reps: u64,
    /// One row per side, size and compute time > 0.
    pub results: Vec<OverlapRow>,
}

/// One (side, size, compute time) point of the overlap grid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverlapRow {
    /// `"sender"` or `"receiver"`: which side computes.
    pub side: String,
    /// Message size.
    pub bytes: u64,
    /// Compute time, µs.
    pub compute_us: u64,
    /// Transfer alone (compute 0), µs.
    pub comm_us: f64,
    /// Transfer and compute, µs.
    pub total_us: f64,
    /// `(comm + compute - total) / min(comm, compute)`, clamped to 0–100 %.
    pub overlap_pct: f64,
    /// Median time taken from the computation, µs (gaps of the compute loop: signal
    /// handlers, preemption; see `util::compute_stolen`). tocsin only; absent in the peers'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stolen_us: Option<f64>,
}

/// `{"impl","bench":"idle","mode","sleep_ms","results":[...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleDoc {
    /// Implementation.
    #[serde(rename = "impl")]
    pub impl_: String,
    /// `"idle"`.
    pub bench: String,
    /// Progress mode (tocsin only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// How long rank 0 sleeps before sending, ms.
    pub sleep_ms: u64,
    /// One row per repetition.
    pub results: Vec<IdleRow>,
}

/// One blocked receive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleRow {
    /// Wall time of the receive, ms.
    pub wall_ms: f64,
    /// CPU time of the process (all threads) during it, ms.
    pub cpu_ms: f64,
    /// User part (getrusage), ms.
    pub user_ms: f64,
    /// System part (getrusage), ms.
    pub sys_ms: f64,
    /// `100 * cpu_ms / wall_ms`.
    pub cpu_pct: f64,
}

/// Any of the documents.
#[derive(Debug, Clone)]
pub enum Doc {
    /// A ping-pong.
    Pingpong(PingpongDoc),
    /// An overlap grid.
    Overlap(OverlapDoc),
    /// An idle measurement.
    Idle(IdleDoc),
}

impl Doc {
    /// The `"bench"` of the document.
    pub fn bench(&self) -> &'static str {
        match self {
            Doc::Pingpong(_) => "pingpong",
            Doc::Overlap(_) => "overlap",
            Doc::Idle(_) => "idle",
        }
    }

    /// The label of a curve: `impl`, plus `(mode)` when known.
    pub fn label(impl_: &str, mode: Option<&str>) -> String {
        match mode {
            Some(m) => format!("{impl_} ({m})"),
            None => impl_.to_string(),
        }
    }
}

/// Reads a benchmark document of any kind; the first line starting with `{` is used, so a
/// launcher's extra output around it does no harm.
pub fn load_any(path: &Path) -> BResult<Doc> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BenchError::Usage(format!("--compare {}: {e}", path.display())))?;
    let json = text
        .lines()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or(&text);
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| BenchError::Usage(format!("--compare {}: {e}", path.display())))?;
    let bad =
        |e: serde_json::Error| BenchError::Usage(format!("--compare {}: {e}", path.display()));
    match v.get("bench").and_then(|b| b.as_str()) {
        Some("pingpong") => Ok(Doc::Pingpong(serde_json::from_value(v).map_err(bad)?)),
        Some("overlap") => Ok(Doc::Overlap(serde_json::from_value(v).map_err(bad)?)),
        Some("idle") => Ok(Doc::Idle(serde_json::from_value(v).map_err(bad)?)),
        other => Err(BenchError::Usage(format!(
            "--compare {}: not a benchmark document (\"bench\" is {other:?})",
            path.display()
        ))),
    }
}

/// Loads the `--compare` files of one benchmark kind, complaining about the others.
pub fn load_compare<T>(
    paths: &[std::path::PathBuf],
    bench: &str,
    pick: impl Fn(Doc) -> Option<T>,
) -> BResult<Vec<T>> {
    paths
        .iter()
        .map(|p| {
            pick(load_any(p)?).ok_or_else(|| {
                BenchError::Usage(format!(
                    "--compare {}: not a \"{bench}\" document",
                    p.display()
                ))
            })
        })
        .collect()
}

/// Prints a document as one line of JSON on stdout.
pub fn print_json<T: Serialize>(doc: &T) -> BResult<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, doc)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}
