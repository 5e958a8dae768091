//! SOURCE_DATE_EPOCH: the one timestamp of a reproducible build. The environment wins; else the last commit's
//! time; else 0 (outside git).

use std::path::Path;

/// Where the build's timestamp came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpochSource {
    /// `SOURCE_DATE_EPOCH` in the environment.
    Env,
    /// The last commit.
    Git,
    /// Neither: 1970.
    Zero,
}

/// The build's timestamp in seconds since 1970, and where it came from.
pub(crate) fn source_date_epoch(workspace_root: &Path) -> Result<(i64, EpochSource), String> {
    if let Ok(value) = std::env::var("SOURCE_DATE_EPOCH") {
        return value
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|seconds| *seconds >= 0)
            .map(|seconds| (seconds, EpochSource::Env))
            .ok_or_else(|| {
                format!("SOURCE_DATE_EPOCH is `{value}`, not a number of seconds since 1970")
            });
    }
    let output = std::process::Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(workspace_root)
        .stderr(std::process::Stdio::null())
        .output();
    let from_git = match output {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<i64>()
            .ok(),
        _ => None,
    };
    Ok(from_git.map_or((0, EpochSource::Zero), |seconds| {
        (seconds, EpochSource::Git)
    }))
}

/// The commit the workspace is at, if it is a git checkout.
pub(crate) fn revision(workspace_root: &Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(workspace_root)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let sha = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !sha.is_empty()).then_some(sha)
}
