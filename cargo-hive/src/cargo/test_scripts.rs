//! Stand-ins for cargo and rustc in tests: shell scripts that count their runs, then do what the test says.

use std::ffi::OsString;
use std::path::Path;

/// A script `name` in `dir` that appends a line to `<dir>/runs`, then runs `then` (shell).
pub(crate) fn counting(dir: &Path, name: &str, then: &str) -> OsString {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join(name);
    let text = format!("#!/bin/sh\necho run >> {}/runs\n{then}\n", dir.display());
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.into_os_string()
}

/// How many times the scripts in `dir` ran.
pub(crate) fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .count()
}
