//! Helpers shared by the integration tests: running a child with a deadline.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a finished child printed and how it exited.
pub struct Out {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

static RUN: AtomicUsize = AtomicUsize::new(0);

/// Runs `cmd` with stdin from /dev/null and its output captured in temporary files, until it
/// exits or `limit` passes; past the limit the child is killed and the test panics with
/// `what` and the child's stderr, so a hang never blocks the suite.
pub fn run_with_limit(mut cmd: Command, what: &str, limit: Duration) -> Out {
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    let tag = format!("tocsin-test-{}-{n}", std::process::id());
    let dir = std::env::temp_dir();
    let (so, se) = (
        dir.join(format!("{tag}.out")),
        dir.join(format!("{tag}.err")),
    );
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&so).expect("stdout file"))
        .stderr(std::fs::File::create(&se).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} took more than {limit:?}; stderr:\n{}",
                std::fs::read_to_string(&se).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Out {
        code: status.code(),
        stdout: std::fs::read_to_string(&so).unwrap_or_default(),
        stderr: std::fs::read_to_string(&se).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(so);
    let _ = std::fs::remove_file(se);
    out
}
