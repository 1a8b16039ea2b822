//! `tocsin run`: starts N local ranks of a program, serves PMI-1 to them, forwards their
//! output and the launcher's SIGINT/SIGTERM, binds them to cores, and ends the whole job
//! as soon as one rank fails.
//!
//! Layout: this file holds the command line ([`RunArgs`]), the job description
//! ([`LaunchSpec`]) and [`launch`]; `job.rs` the event loop; `server.rs` the PMI-1 server
//! (sans I/O); `signals.rs` signal delivery; `binding.rs` the hwloc core list.
//!
//! [`launch`] keeps no per-job global state: `tocsin bench` calls it to start its own ranks,
//! and it may be called again (or concurrently) in one process.

mod binding;
mod job;
mod server;
mod signals;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Most ranks `tocsin run` starts, and the most a [`LaunchSpec`] may ask for. Each rank costs
/// the launcher 4 descriptors and a process, and the job's shared segment grows as n²
/// (n² × 64 KiB: 1 TiB of address space at 4096 ranks), so larger jobs are refused up front.
pub const MAX_RANKS: u32 = 4096;

/// Descriptors the launcher holds per rank: PMI socket, stdout and stderr pipes, pidfd.
const FDS_PER_RANK: u64 = 4;

/// Parses `-n`: a rank count in `1..=MAX_RANKS`, checked before anything is allocated.
fn parse_np(s: &str) -> Result<u32, String> {
    let n: u64 = s.trim().parse().map_err(|_| {
        format!("expected a number of ranks, at least 1 and at most {MAX_RANKS} (-n/--np)")
    })?;
    if n == 0 || n > u64::from(MAX_RANKS) {
        return Err(format!(
            "-n/--np accepts at least 1 and at most {MAX_RANKS} ranks (got {n})"
        ));
    }
    Ok(n as u32)
}

/// Arguments of `tocsin run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Number of ranks to start: at least 1, at most 4096 (MAX_RANKS).
    #[arg(short = 'n', long = "np", value_name = "N", value_parser = parse_np)]
    pub np: u32,
    /// Bind each rank to a core (rank i on core i mod the number of cores), or not.
    /// Default: core when N is at most the number of cores, none otherwise.
    #[arg(long, value_enum, value_name = "core|none")]
    pub bind: Option<Bind>,
    /// Prefix each output line with `[rank]` (stdout stays stdout, stderr stays stderr).
    #[arg(long)]
    pub tag_output: bool,
    /// When a rank fails, report it but leave the other ranks running (as hydra's
    /// `-disable-auto-cleanup`, Open MPI's `--enable-recovery`): they see `PeerDied` for
    /// what needed the failed rank. The job's exit code is still the first failure's.
    #[arg(long)]
    pub keep_going: bool,
    /// The program to start and its arguments (put them after `--`).
    #[arg(
        value_name = "PROGRAM",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

/// How ranks are bound to cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bind {
    /// One core per rank, round-robin over the cores hwloc reports.
    Core,
    /// No binding.
    None,
}

impl Bind {
    /// The default for `n` ranks: [`Bind::Core`] when `n` is at most the number of cores
    /// hwloc reports (or the available parallelism if hwloc fails), [`Bind::None`] otherwise.
    pub fn default_for(n: u32) -> Bind {
        if n as usize <= binding::core_count() {
            Bind::Core
        } else {
            Bind::None
        }
    }
}

/// A job to start: `n` ranks of `program args…`, with extra environment variables.
///
/// Every rank inherits the launcher's environment plus `env` (applied in order), plus
/// `PMI_FD`, `PMI_RANK`, `PMI_SIZE`, `MPI_LOCALRANKID`, `MPI_LOCALNRANKS` and, when bound,
/// `TOCSIN_BOUND_CORE`. Its stdin is `/dev/null`; its stdout and stderr are forwarded line
/// by line to the launcher's.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Number of ranks (≥ 1).
    pub n: u32,
    /// Core binding.
    pub bind: Bind,
    /// Prefix forwarded output lines with `[rank] `.
    pub tag_output: bool,
    /// Leave the other ranks running when one fails (see [`RunArgs::keep_going`]).
    pub keep_going: bool,
    /// Program to run: a path (containing `/`) or a name looked up in `PATH`.
    pub program: PathBuf,
    /// Its arguments (not including `argv[0]`).
    pub args: Vec<OsString>,
    /// Extra environment variables for every rank.
    pub env: Vec<(OsString, OsString)>,
}

impl LaunchSpec {
    /// A job of `n` ranks of `program args…` with the default binding
    /// ([`Bind::default_for`]), untagged output and no extra environment.
    pub fn new<P, A, S>(n: u32, program: P, args: A) -> LaunchSpec
    where
        P: Into<PathBuf>,
        A: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        LaunchSpec {
            n,
            bind: Bind::default_for(n),
            tag_output: false,
            keep_going: false,
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
        }
    }
}

/// Errors of the launcher: the job could not be started (no rank runs any more when one is
/// returned). A job that started and failed is not an error: [`launch`] returns its exit code.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// `n` was 0.
    #[error("the number of ranks must be at least 1 (got -n {0})")]
    NoRanks(u32),
    /// `n` exceeds [`MAX_RANKS`] or what this process's descriptor limit allows.
    #[error("cannot start {n} ranks (-n): {reason}")]
    TooManyRanks {
        /// The rank count asked for.
        n: u32,
        /// Which limit it exceeds and what is accepted.
        reason: String,
    },
    /// The program cannot be found, is not a file, or is not executable.
    #[error("cannot run program {program:?}: {reason}")]
    BadProgram {
        /// The program as given.
        program: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Starting a rank failed (the ranks already started were killed).
    #[error("could not start rank {rank} ({program:?}): {source}")]
    Spawn {
        /// The rank that failed to start.
        rank: u32,
        /// The program.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A system call of the launcher itself failed.
    #[error("{context}: {source}")]
    Io {
        /// What the launcher was doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl LaunchError {
    /// The exit status `tocsin run` uses for this error: 127 for a program not found, 126
    /// for one that cannot be executed, 2 for bad arguments, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            LaunchError::NoRanks(_) | LaunchError::TooManyRanks { .. } => 2,
            LaunchError::BadProgram { reason, .. } if reason.starts_with("not found") => 127,
            LaunchError::BadProgram { .. } => 126,
            _ => 1,
        }
    }
}

/// Runs the job to completion: spawns the ranks, serves PMI-1, forwards output and signals.
/// Returns the job's exit code: 0 if every rank exited 0, otherwise the first failing
/// rank's code (128+signal if it was killed); the other ranks are then terminated
/// (SIGTERM, SIGKILL after a grace period). A PMI abort returns the code it gave (1 if 0);
/// SIGINT/SIGTERM received by the launcher are forwarded and yield 128+signal; a PMI barrier
/// that can never complete (a rank exited 0 without entering it) ends the job with 1.
///
/// # Errors
/// [`LaunchError`] if the job cannot be started: `n == 0`, `n` above [`MAX_RANKS`] or the
/// descriptor limit (raised to its hard limit if needed), the program is missing or not
/// executable (all checked before anything starts), or spawning a rank fails.
pub fn launch(spec: &LaunchSpec) -> Result<i32, LaunchError> {
    if spec.n == 0 {
        return Err(LaunchError::NoRanks(0));
    }
    check_rank_count(spec.n)?;
    let program = resolve_program(&spec.program)?;
    job::run(spec, &program)
}

/// Checks that `n` ranks fit [`MAX_RANKS`] and the descriptor limit (`RLIMIT_NOFILE`), raising
/// the soft limit towards the hard one when that is enough.
fn check_rank_count(n: u32) -> Result<(), LaunchError> {
    if n > MAX_RANKS {
        return Err(LaunchError::TooManyRanks {
            n,
            reason: format!(
                "tocsin run starts at most {MAX_RANKS} ranks (accepted: 1..={MAX_RANKS})"
            ),
        });
    }
    let need = u64::from(n) * FDS_PER_RANK + 64;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into `lim`, a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(()); // unknown limit: spawning will report any failure
    }
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    if soft >= need {
        return Ok(());
    }
    if hard >= need {
        let raised = libc::rlimit {
            rlim_cur: need,
            rlim_max: hard,
        };
        // SAFETY: setrlimit only reads `raised`, a valid rlimit; raising the soft limit up to
        // the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(());
        }
    }
    let most = hard.max(soft).saturating_sub(64) / FDS_PER_RANK;
    Err(LaunchError::TooManyRanks {
        n,
        reason: format!(
            "the launcher needs {FDS_PER_RANK} file descriptors per rank ({need} in all) but \
             its limit is {soft} (hard {hard}): at most {most} ranks here; raise `ulimit -n`"
        ),
    })
}

/// Finds the file to execute: `program` itself if it contains a `/`, else the first
/// executable `PATH` entry of that name.
fn resolve_program(program: &Path) -> Result<PathBuf, LaunchError> {
    let bad = |reason: String| LaunchError::BadProgram {
        program: program.to_owned(),
        reason,
    };
    if program.as_os_str().is_empty() {
        return Err(bad("not found (empty program name)".into()));
    }
    let has_slash = program.as_os_str().as_encoded_bytes().contains(&b'/');
    if has_slash {
        return match std::fs::metadata(program) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(bad("not found (no such file)".into()))
            }
            Err(e) => Err(bad(format!("cannot access it: {e}"))),
            Ok(m) if m.is_dir() => Err(bad("it is a directory".into())),
            Ok(_) if !is_executable(program) => {
                Err(bad("it is not executable (no execute permission)".into()))
            }
            Ok(_) => Ok(program.to_owned()),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut found_not_exec = None;
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let cand = dir.join(program);
        match std::fs::metadata(&cand) {
            Ok(m) if m.is_file() => {
                if is_executable(&cand) {
                    return Ok(cand);
                }
                found_not_exec.get_or_insert(cand);
            }
            _ => {}
        }
    }
    match found_not_exec {
        Some(c) => Err(bad(format!(
            "{} is not executable (no execute permission)",
            c.display()
        ))),
        None => Err(bad("not found in PATH".into())),
    }
}

/// Whether this process may execute `p`.
fn is_executable(p: &Path) -> bool {
    nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// Entry point of `tocsin run`.
pub fn main(a: RunArgs) -> ExitCode {
    if a.np == 0 {
        eprintln!("tocsin run: {}", LaunchError::NoRanks(0));
        return ExitCode::from(2);
    }
    let mut command = a.command.into_iter();
    let Some(program) = command.next() else {
        eprintln!("tocsin run: missing PROGRAM (usage: tocsin run -n N [--bind core|none] [--tag-output] -- PROGRAM [ARGS]...)");
        return ExitCode::from(2);
    };
    let ncores = binding::core_count();
    let bind = match a.bind {
        Some(Bind::Core) => {
            if a.np as usize > ncores {
                eprintln!(
                    "tocsin run: note: binding {} ranks to {ncores} cores: cores are \
                     oversubscribed (ranks share cores round-robin)",
                    a.np
                );
            }
            Bind::Core
        }
        Some(Bind::None) => Bind::None,
        None => Bind::default_for(a.np),
    };
    let mut spec = LaunchSpec::new(a.np, program, command);
    spec.bind = bind;
    spec.tag_output = a.tag_output;
    spec.keep_going = a.keep_going;
    match launch(&spec) {
        Ok(code) => ExitCode::from(exit_byte(code)),
        Err(e) => {
            eprintln!("tocsin run: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// A process exit status byte for job code `code`: itself if in 0..=255, else its low byte,
/// or 1 if that is 0 (a failure never becomes success).
fn exit_byte(code: i32) -> u8 {
    match u8::try_from(code) {
        Ok(b) => b,
        Err(_) => match (code & 0xff) as u8 {
            0 => 1,
            b => b,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_bytes() {
        assert_eq!(exit_byte(0), 0);
        assert_eq!(exit_byte(3), 3);
        assert_eq!(exit_byte(137), 137);
        assert_eq!(exit_byte(-1), 255);
        assert_eq!(exit_byte(256), 1);
    }

    #[test]
    fn program_resolution() {
        assert!(resolve_program(Path::new("sh")).unwrap().ends_with("sh"));
        let e = resolve_program(Path::new("no-such-program-xyz")).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        assert!(e.to_string().contains("no-such-program-xyz"), "{e}");
        let e = resolve_program(Path::new("/nonexistent/prog")).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        let e = resolve_program(Path::new("/tmp")).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        let f = std::env::temp_dir().join(format!("tocsin-resolve-{}", std::process::id()));
        std::fs::write(&f, "").unwrap();
        let e = resolve_program(&f).unwrap_err();
        let _ = std::fs::remove_file(&f);
        assert!(e.to_string().contains("not executable"), "{e}");
        assert_eq!(e.exit_code(), 126);
    }

    #[test]
    fn spec_new_defaults() {
        let s = LaunchSpec::new(1, "true", ["a", "b"]);
        assert_eq!(s.bind, Bind::Core);
        assert!(!s.tag_output && s.env.is_empty());
        assert_eq!(s.args, vec![OsString::from("a"), OsString::from("b")]);
        assert_eq!(
            LaunchSpec::new(100_000, "true", Vec::<OsString>::new()).bind,
            Bind::None
        );
    }

    #[test]
    fn launch_can_be_called_again_in_one_process() {
        for code in [0, 4, 0] {
            let spec = LaunchSpec::new(
                2,
                "sh",
                [
                    "-c",
                    &format!("[ \"$PMI_RANK\" = 1 ] && exit {code}; exit 0"),
                ],
            );
            assert_eq!(launch(&spec).unwrap(), code);
        }
        let mut spec = LaunchSpec::new(1, "sh", ["-c", "[ \"$EXTRA\" = yes ]"]);
        spec.env.push(("EXTRA".into(), "yes".into()));
        assert_eq!(launch(&spec).unwrap(), 0);
    }

    #[test]
    fn rank_count_is_bounded_before_anything_is_allocated() {
        assert_eq!(parse_np("1"), Ok(1));
        assert_eq!(parse_np("4096"), Ok(MAX_RANKS));
        for bad in [
            "0",
            "4097",
            "4294967295",
            "18446744073709551616",
            "-1",
            "x",
            "",
        ] {
            let e = parse_np(bad).unwrap_err();
            assert!(e.contains("-n") && e.contains("4096"), "{bad}: {e}");
        }
        let s = LaunchSpec {
            n: u32::MAX,
            ..LaunchSpec::new(1, "true", Vec::<OsString>::new())
        };
        let e = launch(&s).unwrap_err();
        assert!(
            matches!(e, LaunchError::TooManyRanks { n: u32::MAX, .. }),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("1..=4096"), "{e}");
    }

    #[test]
    fn zero_ranks_is_an_error() {
        let mut s = LaunchSpec::new(1, "true", Vec::<OsString>::new());
        s.n = 0;
        assert!(matches!(launch(&s), Err(LaunchError::NoRanks(0))));
    }
}
