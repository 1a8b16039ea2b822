//! Smoke tests of `tocsin bench`: each benchmark with tiny sizes and iteration counts,
//! self-launched on 2 ranks, checking the JSON it prints (structure, sizes, every number
//! finite and in range) and that plots are written. Never asserts on speed.
//!
//! The tests run one at a time (2 ranks bound to cores each; several jobs at once would
//! oversubscribe the cores and make polling ranks crawl).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{command, run, serial, Outcome as Out, TOCSIN};

const TIME_LIMIT: Duration = Duration::from_secs(180);

/// Runs `tocsin bench ARGS` outside any launcher, with a time limit.
fn bench(args: &[&str]) -> Out {
    let _g = serial();
    let mut cmd = command(TOCSIN);
    cmd.arg("bench").args(args);
    run(&mut cmd, TIME_LIMIT)
}

/// The single JSON document on stdout of a successful run.
fn json(args: &[&str]) -> Value {
    let o = bench(args);
    assert_eq!(
        o.code,
        Some(0),
        "tocsin bench {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        o.stdout,
        o.stderr
    );
    let lines: Vec<&str> = o.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one JSON line, got:\n{}", o.stdout);
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", lines[0]))
}

fn num(v: &Value, k: &str) -> f64 {
    let x = v[k]
        .as_f64()
        .unwrap_or_else(|| panic!("\"{k}\" is not a number in {v}"));
    assert!(x.is_finite(), "\"{k}\" is not finite in {v}");
    x
}

fn header(d: &Value, bench: &str, mode: &str) -> Vec<Value> {
    assert!(
        d["impl"].as_str().unwrap().starts_with("tocsin "),
        "impl: {}",
        d["impl"]
    );
    assert_eq!(d["bench"], bench);
    assert_eq!(d["mode"], mode);
    d["results"].as_array().expect("results").clone()
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tocsin-bench-test-{}-{name}", std::process::id()))
}

const PP_SMALL: &[&str] = &[
    "pingpong",
    "--max-size",
    "64K",
    "--iters",
    "200",
    "--iters-min",
    "10",
    "--global-warmup",
    "100",
    "--json",
    "--quiet",
];

fn check_pingpong(d: &Value, mode: &str) {
    let rows = header(d, "pingpong", mode);
    let sizes: Vec<u64> = rows.iter().map(|r| r["bytes"].as_u64().unwrap()).collect();
    let mut want = vec![0u64];
    want.extend((0..=16).map(|k| 1u64 << k));
    assert_eq!(sizes, want, "sizes 0 and 1 B .. 64 KiB");
    for r in &rows {
        assert!(num(r, "iters") >= 1.0, "{r}");
        assert!(num(r, "latency_us") > 0.0, "{r}");
        let bw = num(r, "bandwidth_MBps");
        if r["bytes"] == 0 {
            assert_eq!(bw, 0.0, "{r}");
        } else {
            assert!(bw > 0.0, "{r}");
        }
    }
    assert!(num(d, "rounds") >= 1.0);
}

#[test]
fn pingpong_poll_json() {
    let mut a = PP_SMALL.to_vec();
    a.extend(["--progress", "poll"]);
    check_pingpong(&json(&a), "poll");
}

#[test]
fn pingpong_block_json_and_plots() {
    // A compare document in the peers' schema (no "mode").
    let peer = tmp("peer.json");
    std::fs::write(
        &peer,
        r#"{"impl":"Fake MPI 1.0","bench":"pingpong","rounds":1,"results":[{"bytes":0,"iters":10,"latency_us":0.5,"bandwidth_MBps":0.0},{"bytes":1,"iters":10,"latency_us":0.5,"bandwidth_MBps":2.0},{"bytes":65536,"iters":10,"latency_us":10.0,"bandwidth_MBps":6553.6}]}"#,
    )
    .unwrap();
    let (svg, png) = (tmp("pp.svg"), tmp("pp.png"));
    for plot in [&svg, &png] {
        let mut a = PP_SMALL.to_vec();
        a.extend(["--progress", "block", "--plot", plot.to_str().unwrap()]);
        a.extend(["--compare", peer.to_str().unwrap()]);
        check_pingpong(&json(&a), "block");
    }
    assert_plot(&svg);
    assert_plot(&png);
    let _ = std::fs::remove_file(peer);
}

fn assert_plot(p: &Path) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    if p.extension().unwrap() == "svg" {
        assert!(String::from_utf8_lossy(&b).contains("<svg"), "not an SVG");
    } else {
        assert!(b.starts_with(b"\x89PNG"), "not a PNG");
    }
    assert!(b.len() > 1000, "{} is suspiciously small", p.display());
    let _ = std::fs::remove_file(p);
}

#[test]
fn pingpong_table() {
    let o = bench(&[
        "pingpong",
        "--max-size",
        "1K",
        "--iters",
        "50",
        "--global-warmup",
        "10",
        "--quiet",
    ]);
    assert_eq!(o.code, Some(0), "stderr:\n{}", o.stderr);
    assert!(
        o.stdout.contains("# Size") && o.stdout.contains("Latency(us)"),
        "{}",
        o.stdout
    );
    let rows = o
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    assert_eq!(rows, 12, "sizes 0, 1..1024:\n{}", o.stdout);
}

#[test]
fn overlap_json_and_heat_map() {
    let svg = tmp("ov.svg");
    let d = json(&[
        "overlap",
        "--sizes",
        "4K,64K",
        "--compute-us",
        "20,0,100",
        "--reps",
        "3",
        "--warmup",
        "1",
        "--progress",
        "poll",
        "--json",
        "--quiet",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let rows = header(&d, "overlap", "poll");
    assert!(num(&d, "lat0_us") > 0.0);
    assert_eq!(num(&d, "reps"), 3.0);
    let mut keys: Vec<(String, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["side"].as_str().unwrap().to_string(),
                r["bytes"].as_u64().unwrap(),
                r["compute_us"].as_u64().unwrap(),
            )
        })
        .collect();
    keys.sort();
    let mut want = Vec::new();
    for side in ["receiver", "sender"] {
        for b in [4096, 65536] {
            for t in [20, 100] {
                want.push((side.to_string(), b, t));
            }
        }
    }
    assert_eq!(keys, want);
    for r in &rows {
        assert!(num(r, "comm_us") >= 0.0, "{r}");
        assert!(num(r, "total_us") > 0.0, "{r}");
        let ov = num(r, "overlap_pct");
        assert!((0.0..=100.0).contains(&ov), "{r}");
    }
    assert_plot(&svg);
}

#[test]
fn idle_json() {
    let png = tmp("idle.png");
    let d = json(&[
        "idle",
        "--delay-ms",
        "20",
        "--reps",
        "2",
        "--progress",
        "block",
        "--json",
        "--quiet",
        "--plot",
        png.to_str().unwrap(),
    ]);
    let rows = header(&d, "idle", "block");
    assert_eq!(num(&d, "sleep_ms"), 20.0);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(num(r, "wall_ms") > 0.0, "{r}");
        assert!(num(r, "cpu_ms") >= 0.0, "{r}");
        assert!(num(r, "user_ms") >= 0.0, "{r}");
        assert!(num(r, "sys_ms") >= 0.0, "{r}");
        assert!(num(r, "cpu_pct") >= 0.0, "{r}");
    }
    assert_plot(&png);
}

#[test]
fn bad_plot_name_is_refused_before_launching() {
    let o = bench(&["idle", "--plot", "/tmp/x.pdf", "--reps", "1"]);
    assert_ne!(o.code, Some(0));
    assert!(o.stderr.contains(".svg or .png"), "{}", o.stderr);
}

#[test]
fn plot_redraws_saved_documents() {
    let docs = [
        (
            "pp.json",
            r#"{"impl":"tocsin 0.1.0","bench":"pingpong","mode":"poll","rounds":1,"results":[{"bytes":0,"iters":10,"latency_us":0.2,"bandwidth_MBps":0.0},{"bytes":1024,"iters":10,"latency_us":0.3,"bandwidth_MBps":3413.3}]}"#,
        ),
        (
            "ov.json",
            r#"{"impl":"Fake MPI 1.0","bench":"overlap","lat0_us":0.2,"reps":3,"results":[{"side":"sender","bytes":4096,"compute_us":10,"comm_us":1.0,"total_us":10.5,"overlap_pct":50.0},{"side":"receiver","bytes":4096,"compute_us":10,"comm_us":1.0,"total_us":11.0,"overlap_pct":0.0}]}"#,
        ),
        (
            "idle.json",
            r#"{"impl":"Fake MPI 1.0","bench":"idle","sleep_ms":200,"results":[{"wall_ms":200.0,"cpu_ms":199.0,"user_ms":199.0,"sys_ms":0.0,"cpu_pct":99.5}]}"#,
        ),
    ];
    let paths: Vec<PathBuf> = docs
        .iter()
        .map(|(n, d)| {
            let p = tmp(n);
            std::fs::write(&p, d).unwrap();
            p
        })
        .collect();
    for (i, ext) in ["svg", "png", "svg"].iter().enumerate() {
        let out = tmp(&format!("replot{i}.{ext}"));
        let o = bench(&[
            "plot",
            "--plot",
            out.to_str().unwrap(),
            paths[i].to_str().unwrap(),
            paths[i].to_str().unwrap(),
        ]);
        assert_eq!(o.code, Some(0), "stderr:\n{}", o.stderr);
        assert_plot(&out);
    }
    // Kinds must not be mixed.
    let o = bench(&[
        "plot",
        "--plot",
        tmp("mixed.svg").to_str().unwrap(),
        paths[0].to_str().unwrap(),
        paths[2].to_str().unwrap(),
    ]);
    assert_ne!(o.code, Some(0));
    assert!(
        o.stderr.contains("not a \"pingpong\" document"),
        "{}",
        o.stderr
    );
    // Nor given to the wrong benchmark.
    let o = bench(&["idle", "--compare", paths[0].to_str().unwrap()]);
    assert_ne!(o.code, Some(0));
    assert!(o.stderr.contains("not \"idle\""), "{}", o.stderr);
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}
