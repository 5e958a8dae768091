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

/// The latest SOURCE_DATE_EPOCH accepted: the last whole second whose nanoseconds fit the daemon's 64-bit file
/// times (2262-04-11T23:47:16Z). Later ones would be clamped or wrap there, and past 9999 the daemon cannot even
/// encode them (Go's time JSON), failing only after the whole build.
pub(crate) const MAX_EPOCH: i64 = i64::MAX / 1_000_000_000;

/// A SOURCE_DATE_EPOCH that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "SOURCE_DATE_EPOCH is `{value}`, {reason}: it must be whole seconds since 1970-01-01 UTC, from 0 to {MAX_EPOCH} \
     (2262-04-11T23:47:16Z){hint}"
)]
pub(crate) struct EpochError {
    value: String,
    reason: &'static str,
    hint: &'static str,
}

/// Reads SOURCE_DATE_EPOCH as the reproducible-builds specification has it: the decimal digits of `date +%s`
/// (surrounding whitespace forgiven); anything else is an error, not a silent fallback, an empty value included.
fn parse_epoch(value: &str) -> Result<i64, EpochError> {
    let digits = value.trim();
    let error = |reason, hint| EpochError {
        value: value.to_owned(),
        reason,
        hint,
    };
    if digits.is_empty() {
        return Err(error(
            "set but empty",
            "; unset it to use the last commit's time",
        ));
    }
    if let Some(rest) = digits.strip_prefix('-')
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(error("before 1970", ""));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error("not a whole number", ""));
    }
    match digits.parse::<i64>() {
        Ok(seconds) if seconds <= MAX_EPOCH => Ok(seconds),
        _ => Err(error("too far in the future", "")),
    }
}

/// The build's timestamp in seconds since 1970, and where it came from.
pub(crate) fn source_date_epoch(workspace_root: &Path) -> Result<(i64, EpochSource), EpochError> {
    if let Some(value) = std::env::var_os("SOURCE_DATE_EPOCH") {
        let value = value.to_string_lossy();
        return parse_epoch(&value).map(|seconds| (seconds, EpochSource::Env));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_date_epoch_is_checked_against_the_daemons_range() {
        assert_eq!(parse_epoch("0").unwrap(), 0);
        assert_eq!(parse_epoch(" 1700000000\n").unwrap(), 1_700_000_000);
        assert_eq!(parse_epoch("9223372036").unwrap(), MAX_EPOCH);
        let reason = |value: &str| parse_epoch(value).unwrap_err().reason;
        assert_eq!(reason("9223372037"), "too far in the future");
        assert_eq!(reason("253402300800"), "too far in the future");
        assert_eq!(reason("99999999999999999999999"), "too far in the future");
        assert_eq!(reason("-1"), "before 1970");
        assert_eq!(reason(""), "set but empty");
        assert_eq!(reason("  "), "set but empty");
        for value in ["+5", "1e9", "1.5", "soon", "-", "0x10"] {
            assert_eq!(reason(value), "not a whole number", "{value}");
        }
        assert_eq!(
            parse_epoch("253402300800").unwrap_err().to_string(),
            "SOURCE_DATE_EPOCH is `253402300800`, too far in the future: it must be whole seconds since \
             1970-01-01 UTC, from 0 to 9223372036 (2262-04-11T23:47:16Z)"
        );
        assert!(
            parse_epoch("")
                .unwrap_err()
                .to_string()
                .ends_with("; unset it to use the last commit's time")
        );
    }
}
