//! Smoke tests of `tocsin probe` and `tocsin bench notify`: the JSON they print parses and
//! says what this machine has (UINTR absent with a reason, at least one core; finite
//! positive medians for every mechanism that runs, UINTR skipped with a reason unless the
//! library's detection says this machine has it, measured then). Never asserts on speed. Every child runs under a time limit and is killed past it.

use std::time::Duration;

use serde_json::Value;

mod common;
use common::{command, run, serial, Outcome as Out, TOCSIN};

/// Runs `tocsin ARGS` with a time limit, killing it past the limit.
fn tocsin(args: &[&str], limit: Duration) -> Out {
    // One at a time: `bench notify` binds to the cores and would disturb another run.
    let _g = serial();
    let mut cmd = command(TOCSIN);
    cmd.args(args);
    run(&mut cmd, limit)
}

fn json_of(args: &[&str], limit: Duration) -> Value {
    let o = tocsin(args, limit);
    assert_eq!(
        o.code,
        Some(0),
        "tocsin {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        o.stdout,
        o.stderr
    );
    serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("tocsin {args:?}: bad JSON ({e}):\n{}", o.stdout))
}

fn nonempty_str(v: &Value) -> bool {
    v.as_str().is_some_and(|s| !s.trim().is_empty())
}

#[test]
fn probe_json_reports_the_machine() {
    let j = json_of(&["probe", "--json"], Duration::from_secs(60));
    let items = &j["items"];
    for name in [
        "uintr_cpu",
        "uintr_kernel_flag",
        "uintr_kernel",
        "uintr_mode",
        "cma",
        "cma_non_descendant",
        "ptrace_scope",
        "rt_signals",
        "futex",
        "eventfd",
        "pidfd_open",
        "memfd_create",
        "topology",
    ] {
        assert!(items[name]["ok"].is_boolean(), "{name}: {j:#}");
        assert!(nonempty_str(&items[name]["detail"]), "{name}: {j:#}");
    }
    // The library's own detection decides what "here" is; on this project's machines the
    // CPU has no UINTR, and then the probe must say so with a reason.
    let cpu = tocsin::interrupt::uintr::cpu_has_uintr();
    assert_eq!(items["uintr_cpu"]["ok"], Value::Bool(cpu), "{j:#}");
    if !cpu {
        let why = items["uintr_cpu"]["detail"].as_str().unwrap_or_default();
        assert!(why.contains("CPUID"), "{why}");
        assert_eq!(items["uintr_kernel"]["ok"], Value::Bool(false));
        assert_eq!(items["uintr_mode"]["ok"], Value::Bool(false));
    }
    // Things every Linux this project supports has.
    assert_eq!(items["futex"]["ok"], Value::Bool(true), "{j:#}");
    assert_eq!(items["eventfd"]["ok"], Value::Bool(true), "{j:#}");
    let rt = &items["rt_signals"];
    assert!(rt["sigrtmin"].as_i64().unwrap_or(0) > 0);
    assert!(rt["sigrtmax"].as_i64().unwrap_or(0) > rt["sigrtmin"].as_i64().unwrap_or(0));
    // Topology: at least one core this process may run on.
    let t = &j["topology"];
    assert!(t["cores"].as_u64().unwrap_or(0) >= 1, "{t:#}");
    assert!(t["pus"].as_u64().unwrap_or(0) >= 1, "{t:#}");
    let allowed = t["allowed_cores"].as_array().expect("allowed_cores");
    assert!(!allowed.is_empty(), "{t:#}");
    assert!(allowed
        .iter()
        .all(|c| c["pus"].as_array().is_some_and(|p| !p.is_empty())));
}

#[test]
fn probe_text_has_one_line_per_item_and_exits_0() {
    let o = tocsin(&["probe"], Duration::from_secs(60));
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    for name in ["uintr_cpu", "cma", "rt_signals", "futex", "topology"] {
        let line = o
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{}", o.stdout));
        assert!(line.contains(" yes ") || line.contains(" no "), "{line}");
    }
}

#[test]
fn notify_json_has_positive_medians_and_skips_uintr_with_a_reason() {
    let plot = std::env::temp_dir().join(format!("tocsin-notify-test-{}.svg", std::process::id()));
    let plot_s = plot.to_string_lossy().into_owned();
    let j = json_of(
        &[
            "bench",
            "notify",
            "--iters",
            "200",
            "--case-secs",
            "0.5",
            "--json",
            "--plot",
            &plot_s,
        ],
        Duration::from_secs(240),
    );
    assert_eq!(j["bench"], "notify");
    let results = j["results"].as_array().expect("results");
    let skipped = j["skipped"].as_array().expect("skipped");
    for mech in ["flag", "futex", "eventfd", "signal"] {
        let rows: Vec<&Value> = results.iter().filter(|r| r["mechanism"] == mech).collect();
        // The one environmental failure tolerated: the per-user queue of real-time signals
        // filled by other processes (tgkill then fails with EAGAIN); the bench must say so.
        let eagain = skipped.iter().any(|s| {
            s["mechanism"] == mech && s["reason"].as_str().is_some_and(|r| r.contains("EAGAIN"))
        });
        if rows.is_empty() && mech == "signal" && eagain {
            eprintln!("warning: signal cases skipped: the user's RT signal queue is full: {j:#}");
            continue;
        }
        assert!(!rows.is_empty(), "no result for {mech}: {j:#}");
        for r in rows {
            check_row(r);
        }
    }
    // Both kinds of pairs were measured.
    for b in ["threads", "processes"] {
        assert!(results.iter().any(|r| r["between"] == b), "no {b}: {j:#}");
    }
    // UINTR runs only where the library's detection allows it, and is skipped with the
    // reason elsewhere (this project's machines have no UINTR).
    if tocsin::interrupt::uintr::support().require().is_ok() {
        let rows: Vec<&Value> = results
            .iter()
            .filter(|r| r["mechanism"] == "uintr")
            .collect();
        for r in &rows {
            assert_eq!(r["receiver"], "busy", "{r}");
            check_row(r);
        }
        let failed = skipped
            .iter()
            .filter(|s| s["mechanism"] == "uintr")
            .inspect(|s| assert!(nonempty_str(&s["reason"]), "{s}"))
            .count();
        assert!(
            !rows.is_empty() || failed > 0,
            "uintr neither measured nor skipped: {j:#}"
        );
    } else {
        assert!(
            !results.iter().any(|r| r["mechanism"] == "uintr"),
            "uintr measured without support: {j:#}"
        );
        let uintr = skipped
            .iter()
            .find(|s| s["mechanism"] == "uintr")
            .unwrap_or_else(|| panic!("uintr not skipped: {j:#}"));
        assert!(nonempty_str(&uintr["reason"]), "{uintr}");
    }
    let svg = std::fs::read_to_string(&plot).expect("plot written");
    let _ = std::fs::remove_file(&plot);
    assert!(svg.contains("<svg"), "not an SVG");
}

/// One measured case of `bench notify --json`: a known pair and placement, finite
/// positive ordered percentiles, at least one iteration.
fn check_row(r: &Value) {
    assert!(
        ["threads", "processes"].contains(&r["between"].as_str().unwrap_or("")),
        "{r}"
    );
    assert!(
        ["same-core", "other-core", "other-numa"].contains(&r["placement"].as_str().unwrap_or("")),
        "{r}"
    );
    for k in ["median_us", "p10_us", "p90_us", "p99_us"] {
        let v = r[k].as_f64().unwrap_or(f64::NAN);
        assert!(
            v.is_finite() && v > 0.0,
            "{} {k} = {v}: {r}",
            r["mechanism"]
        );
    }
    let (p10, med, p90, p99) = (
        r["p10_us"].as_f64().unwrap(),
        r["median_us"].as_f64().unwrap(),
        r["p90_us"].as_f64().unwrap(),
        r["p99_us"].as_f64().unwrap(),
    );
    assert!(p10 <= med && med <= p90 && p90 <= p99, "{r}");
    assert!(r["iters"].as_u64().unwrap_or(0) >= 1, "{r}");
}

#[test]
fn notify_rejects_a_bad_plot_name_before_running() {
    let o = tocsin(
        &["bench", "notify", "--iters", "10", "--plot", "out.jpg"],
        Duration::from_secs(30),
    );
    assert_ne!(o.code, Some(0));
    assert!(o.stderr.contains(".svg or .png"), "{}", o.stderr);
}
