//! Shared by the tests that load `libmpi_abi.so`: where the freshly built library is.

use std::path::{Path, PathBuf};

/// `target/<profile>`, the parent of this test's `deps/` directory.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// `target/<profile>/libmpi_abi.so`, made current: `cargo test` builds the cdylib into
/// `deps/` and copies it up only on `cargo build`, so when the `deps/` one is newer (or the
/// other is missing) it is copied up here (through a temporary name and a rename, so that
/// tests running at once never see half a file). `scripts/mpi/install.sh` reads it there.
pub fn library() -> PathBuf {
    let dir = profile_dir();
    let top = dir.join("libmpi_abi.so");
    let deps = dir.join("deps/libmpi_abi.so");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let Some(d) = mtime(&deps) {
        if mtime(&top).is_none_or(|t| t < d) {
            static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = dir.join(format!(".libmpi_abi.so.{}.{seq}", std::process::id()));
            std::fs::copy(&deps, &tmp).expect("copy libmpi_abi.so up from deps/");
            std::fs::rename(&tmp, &top).expect("rename libmpi_abi.so into place");
        }
    }
    assert!(top.exists(), "{} not built", top.display());
    top
}
