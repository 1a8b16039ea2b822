//! `tocsin tune`: measures this machine, prints every measurement and every chosen value
//! with its formula's inputs, and writes the per-user cache that rank 0 of every job reads.
//!
//! Owns the report only: the measurements, the cost model and the cache are
//! [`tocsin::tune`]'s. It exits 1 only when the cache cannot be written (not with
//! `--dry-run`).

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;
use tocsin::tune::{self, kib, Measurements};

/// Arguments of `tocsin tune`.
#[derive(clap::Args, Debug)]
pub struct TuneArgs {
    /// Measure and print, but do not write the cache.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document instead of the report.
    #[arg(long)]
    pub json: bool,
}

fn us(ns: f64) -> String {
    format!("{:.2} µs", ns / 1000.0)
}

fn opt_us(ns: Option<f64>) -> String {
    ns.map_or_else(|| "-".into(), us)
}

/// The report: measurements, then values with their derivations.
fn text(m: &Measurements, key: &tune::CacheKey, written: &str) -> String {
    let d = tune::derive(m);
    let mut t = String::new();
    t += &format!(
        "tocsin tune: {} — {} online CPUs — Linux {}\n",
        key.cpu_model, key.cores, key.kernel
    );
    t += &format!(
        "calibration: {:.0} ms, threads on CPUs {}, cold pool {}\n\n",
        m.elapsed_ms,
        m.cpus
            .map_or_else(|| "unpinned".into(), |(a, b)| format!("{a} and {b}")),
        kib(m.cold_pool_bytes)
    );
    t += "measurements (medians):\n";
    t += &format!(
        "  {:>8}  {:>12}  {:>12}  {:>12}  {:>12}  {:>12}\n",
        "size", "memcpy hot", "memcpy cold", "cold, paired", "cma hot", "cma cold"
    );
    for p in &m.points {
        t += &format!(
            "  {:>8}  {:>12}  {:>12}  {:>12}  {:>12}  {:>12}\n",
            kib(p.bytes),
            us(p.memcpy_hot_ns),
            us(p.memcpy_cold_ns),
            opt_us(p.memcpy_pair_cold_ns),
            opt_us(p.cma_hot_ns),
            opt_us(p.cma_cold_ns)
        );
    }
    match (&m.cma_error, tune::cma_fit(m)) {
        (Some(e), _) => t += &format!("  cma: unavailable ({e})\n"),
        (None, Some((a, b))) => {
            t += &format!("  cma fit (hot): {a:.0} ns a call + {b:.0} ns a 4 KiB page\n")
        }
        (None, None) => {}
    }
    t += &format!(
        "  handoff h (one-way, cache line): {:.0} ns\n",
        m.handoff_ns
    );
    t += &format!("  futex wake-up w: {:.1} µs\n\n", m.wake_ns / 1000.0);
    t += "chosen values:\n";
    let v = d.values;
    for (name, var, val) in [
        (
            "eager_threshold",
            "TOCSIN_EAGER_THRESHOLD",
            v.eager_threshold.to_string(),
        ),
        ("cma", "TOCSIN_CMA", u8::from(v.cma).to_string()),
        (
            "chunk_bytes",
            "TOCSIN_CHUNK_BYTES",
            v.chunk_bytes.to_string(),
        ),
        ("spin_us", "TOCSIN_SPIN_US", v.spin_us.to_string()),
    ] {
        t += &format!("  {var}={val}\n");
        for (k, why) in &d.why {
            if *k == name {
                t += &format!("      {why}\n");
            }
        }
    }
    t += &format!("\n{written}\n");
    t
}

/// Entry point of `tocsin tune`.
pub fn main(a: TuneArgs) -> ExitCode {
    let m = tune::calibrate();
    let key = tune::CacheKey::current();
    let (written, path, ok) = if a.dry_run {
        (
            format!(
                "cache: not written (--dry-run); it would be {}",
                tune::cache_path().map_or_else(
                    || "(no cache directory)".into(),
                    |p| p.display().to_string()
                )
            ),
            None,
            true,
        )
    } else {
        match tune::store(&m) {
            Ok(p) => (format!("cache: written to {}", p.display()), Some(p), true),
            Err(e) => (format!("cache: NOT written: {e}"), None, false),
        }
    };
    let out = if a.json {
        let d = tune::derive(&m);
        let doc = json!({
            "tune": "tocsin",
            "version": env!("CARGO_PKG_VERSION"),
            "key": key,
            "measured": m,
            "cma_fit_ns": tune::cma_fit(&m).map(|(a, b)| json!({"call": a, "per_page": b})),
            "values": d.values,
            "why": d.why.iter().map(|(k, w)| (k.to_string(), json!(w))).collect::<serde_json::Map<_, _>>(),
            "cache": path.map(|p| p.display().to_string()),
            "dry_run": a.dry_run,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    } else {
        text(&m, &key, &written)
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    if !ok {
        eprintln!("tocsin tune: {written}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
