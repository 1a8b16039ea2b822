//! `tocsin tune` and the thresholds `tocsin probe` reports: `--dry-run` prints every
//! measurement and chosen value and writes nothing; a real run writes the cache, which
//! `probe` then names as the source of each value; `TOCSIN_*` overrides and `TOCSIN_TUNE=0`
//! are reported as such; a corrupt cache is ignored. Each run uses a cache directory of its
//! own (`TOCSIN_CACHE_DIR`). Never asserts on speed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{command, run, serial, Outcome as Out, TOCSIN};

const LIMIT: Duration = Duration::from_secs(60);

/// A fresh, empty directory for this test's cache.
fn cache_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tocsin-cli-tune-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `tocsin ARGS` with `TOCSIN_CACHE_DIR=dir` and `env`.
fn tocsin(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    // One at a time: the calibration measures the machine.
    let _g = serial();
    let mut cmd = command(TOCSIN);
    cmd.args(args).env("TOCSIN_CACHE_DIR", dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = run(&mut cmd, LIMIT);
    assert_eq!(o.code, Some(0), "tocsin {args:?}: {}", o.report());
    o
}

fn files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// `probe --json`'s threshold items: `name → (value, source)`.
/// `tocsin probe` names every threshold's source as the built-in default.
fn assert_all_default(dir: &Path) {
    for (n, _, src) in thresholds(dir, &[]) {
        assert_eq!(src, "default", "{n}");
    }
}

fn thresholds(dir: &Path, env: &[(&str, &str)]) -> Vec<(String, u64, String)> {
    let o = tocsin(dir, &["probe", "--json"], env);
    let j: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout));
    [
        "eager_threshold",
        "cma_rendezvous",
        "chunk_bytes",
        "spin_us",
    ]
    .iter()
    .map(|n| {
        let it = &j["items"][n];
        (
            n.to_string(),
            it["value"].as_u64().unwrap_or_else(|| panic!("{n}: {j:#}")),
            it["source"].as_str().unwrap_or_default().to_owned(),
        )
    })
    .collect()
}

#[test]
fn dry_run_prints_measurements_and_values_and_writes_nothing() {
    let dir = cache_dir("dry");
    let o = tocsin(&dir, &["tune", "--dry-run"], &[]);
    for needle in [
        "memcpy hot",
        "cma",
        "handoff h",
        "futex wake-up w",
        "TOCSIN_EAGER_THRESHOLD=",
        "TOCSIN_CMA=",
        "TOCSIN_CHUNK_BYTES=",
        "TOCSIN_SPIN_US=",
        "not written (--dry-run)",
    ] {
        assert!(
            o.stdout.contains(needle),
            "{needle:?} missing:\n{}",
            o.stdout
        );
    }
    // Every chosen value comes with its formula's inputs.
    assert!(
        o.stdout.contains("eager(s)") && o.stdout.contains("w = "),
        "{}",
        o.stdout
    );
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    // Nothing cached: probe says every value is the built-in default.
    assert_all_default(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tune_writes_the_cache_and_probe_names_each_source() {
    let dir = cache_dir("write");
    let o = tocsin(&dir, &["tune", "--json"], &[]);
    let j: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout));
    let v = &j["values"];
    assert_eq!(files(&dir).len(), 1, "{:?}", files(&dir));
    assert!(
        j["measured"]["points"]
            .as_array()
            .is_some_and(|p| p.len() == 13),
        "{j:#}"
    );
    let t = thresholds(&dir, &[]);
    let want = [
        v["eager_threshold"].as_u64().unwrap(),
        u64::from(v["cma"].as_bool().unwrap()),
        v["chunk_bytes"].as_u64().unwrap(),
        v["spin_us"].as_u64().unwrap(),
    ];
    for ((n, val, src), w) in t.iter().zip(want).take(3) {
        assert_eq!(src, "cache", "{n}");
        assert_eq!(*val, w, "{n}");
    }
    // The spin adapts at init (each rank measures its wake-up): not from the cache.
    assert_eq!(t[3].2, "default");
    // An override wins and is named; the others still come from the cache.
    let t = thresholds(&dir, &[("TOCSIN_SPIN_US", "7"), ("TOCSIN_CMA", "0")]);
    assert_eq!(t[3], ("spin_us".into(), 7, "env".into()));
    assert_eq!(t[1], ("cma_rendezvous".into(), 0, "env".into()));
    assert_eq!(t[0].2, "cache");
    // Tuning off: built-in defaults.
    let t = thresholds(&dir, &[("TOCSIN_TUNE", "0")]);
    assert_eq!(t[0], ("eager_threshold".into(), 65536, "default".into()));
    assert_eq!(t[3], ("spin_us".into(), 250, "default".into()));
    // A corrupt cache is ignored.
    let f = dir.join(&files(&dir)[0]);
    std::fs::write(&f, "{ corrupt").unwrap();
    assert_all_default(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_job_uses_and_writes_the_cache() {
    // Rank 0 calibrates (no cache yet) and publishes its values; the job passes either way.
    let dir = cache_dir("job");
    let _g = serial();
    let mut cmd = common::tocsin_run(2, env!("CARGO_BIN_EXE_tocsin-testrank"));
    cmd.arg("sizes").env("TOCSIN_CACHE_DIR", &dir);
    let o = run(&mut cmd, Duration::from_secs(120));
    o.assert_ranks_ok(2, "sizes");
    assert_eq!(
        files(&dir).len(),
        1,
        "rank 0 wrote the cache: {:?}",
        files(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
