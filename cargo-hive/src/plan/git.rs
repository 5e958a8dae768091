//! Git facts, computed once per run and used everywhere: the commit (`{git.sha}`, `{git.short_sha}` tags and the
//! `org.opencontainers.image.revision` label), the branch (`{git.branch}`) and the commit's time (the build's
//! SOURCE_DATE_EPOCH when the environment sets none). `HIVE_GIT_SHA` and `HIVE_GIT_BRANCH` override git for all of
//! them alike, so a tag, the label and the timestamps can never name different commits. Git runs lazily, at most
//! once per fact.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

/// Why a git fact is not known.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum GitError {
    /// Git could not be started.
    // The cause is part of the message: it is shown inside a template's diagnostic, which has no cause chain.
    #[error("`{command}` could not run in {}: {error}", dir.display())]
    NotRun {
        command: String,
        dir: PathBuf,
        error: Arc<std::io::Error>,
    },
    /// Git ran and failed (not a repository, no commits, …).
    #[error("`{command}` failed in {}: {stderr}", dir.display())]
    Failed {
        command: String,
        dir: PathBuf,
        stderr: String,
    },
    /// `HEAD` is not a branch.
    #[error("HEAD is not on a branch (a detached checkout?); set HIVE_GIT_BRANCH to name one")]
    Detached,
    /// A test's workspace without git.
    #[cfg(test)]
    #[error("not a git repository")]
    Missing,
}

/// What the environment says instead of git (`HIVE_GIT_SHA`, `HIVE_GIT_BRANCH`): for CI checkouts without `.git`,
/// and for reproducible output.
#[derive(Debug, Clone, Default)]
pub(crate) struct GitOverrides {
    /// `HIVE_GIT_SHA`.
    pub(crate) sha: Option<String>,
    /// `HIVE_GIT_BRANCH`.
    pub(crate) branch: Option<String>,
}

/// The git facts of the workspace.
#[derive(Debug)]
pub(crate) struct GitFacts {
    dir: PathBuf,
    sha: OnceLock<Result<String, GitError>>,
    branch: OnceLock<Result<String, GitError>>,
    time: OnceLock<Option<i64>>,
}

impl GitFacts {
    /// The facts of the checkout at `dir`, with the environment's overrides.
    pub(crate) fn new(dir: PathBuf, overrides: GitOverrides) -> GitFacts {
        let facts = GitFacts {
            dir,
            sha: OnceLock::new(),
            branch: OnceLock::new(),
            time: OnceLock::new(),
        };
        if let Some(sha) = overrides.sha {
            let _ = facts.sha.set(Ok(sha));
        }
        if let Some(branch) = overrides.branch {
            let _ = facts.branch.set(Ok(branch));
        }
        facts
    }

    /// Facts given outright, for tests: git never runs.
    #[cfg(test)]
    pub(crate) fn fixed(sha: Option<&str>, branch: Option<&str>, time: Option<i64>) -> GitFacts {
        let known = |value: Option<&str>| value.map(str::to_owned).ok_or(GitError::Missing);
        GitFacts {
            dir: PathBuf::new(),
            sha: OnceLock::from(known(sha)),
            branch: OnceLock::from(known(branch)),
            time: OnceLock::from(time),
        }
    }

    /// The full commit hash: `HIVE_GIT_SHA`, else `HEAD`'s.
    pub(crate) fn sha(&self) -> Result<&str, &GitError> {
        self.sha
            .get_or_init(|| match self.head() {
                Some((sha, time)) => {
                    let _ = self.time.set(Some(time));
                    Ok(sha)
                }
                // Asked again the plain way, for its error.
                None => self.git(&["rev-parse", "HEAD"]),
            })
            .as_deref()
    }

    /// `HEAD`'s hash and commit time, from one git run (every build needs both).
    fn head(&self) -> Option<(String, i64)> {
        let head = self.git(&[
            "log",
            "-1",
            "--format=%H %ct",
            "--end-of-options",
            "HEAD",
            "--",
        ]);
        let head = head.ok()?;
        let (sha, time) = head.split_once(' ')?;
        Some((sha.to_owned(), time.parse().ok()?))
    }

    /// The first seven characters of [`GitFacts::sha`].
    pub(crate) fn short_sha(&self) -> Result<&str, &GitError> {
        self.sha().map(|sha| {
            sha.char_indices()
                .nth(7)
                .map_or(sha, |(end, _)| &sha[..end])
        })
    }

    /// The checked-out branch: `HIVE_GIT_BRANCH`, else `HEAD`'s.
    pub(crate) fn branch(&self) -> Result<&str, &GitError> {
        self.branch
            .get_or_init(|| {
                self.git(&["symbolic-ref", "--short", "HEAD"])
                    .map_err(|_| GitError::Detached)
            })
            .as_deref()
    }

    /// The commit's time in seconds since 1970: of the commit [`GitFacts::sha`] names, so it agrees with the
    /// tags and the label. `None` outside git, or when the commit is not in the checkout.
    pub(crate) fn commit_time(&self) -> Option<i64> {
        // Asked first, outside the time's initialization: finding HEAD's hash may set the time (one git run).
        let sha = self.sha();
        *self.time.get_or_init(|| {
            let sha = sha.ok()?;
            let time = self.git(&["log", "-1", "--format=%ct", "--end-of-options", sha, "--"]);
            time.ok()?.parse().ok()
        })
    }

    fn git(&self, args: &[&str]) -> Result<String, GitError> {
        let command = format!("git {}", args.join(" "));
        let output = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|err| GitError::NotRun {
                command: command.clone(),
                dir: self.dir.clone(),
                error: Arc::new(err),
            })?;
        if !output.status.success() {
            return Err(GitError::Failed {
                command,
                dir: self.dir.clone(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

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

/// The build's timestamp in seconds since 1970, and where it came from: `SOURCE_DATE_EPOCH` (its value given as
/// `env`), else the time of the commit the git facts name.
pub(crate) fn source_date_epoch(
    env: Option<&OsStr>,
    git: &GitFacts,
) -> Result<(i64, EpochSource), EpochError> {
    if let Some(value) = env {
        let value = value.to_string_lossy();
        return parse_epoch(&value).map(|seconds| (seconds, EpochSource::Env));
    }
    Ok(git.commit_time().map_or((0, EpochSource::Zero), |seconds| {
        (seconds, EpochSource::Git)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs git in `dir`, committing at `time` (seconds since 1970) when it commits.
    fn git(dir: &std::path::Path, args: &[&str], time: i64) -> String {
        let date = format!("@{time} +0000");
        let output = Command::new("git")
            .args(["-c", "user.name=Hive", "-c", "user.email=hive@example.com"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn the_commit_and_its_time_come_from_the_same_place() {
        let repo = tempfile::tempdir().unwrap();
        let dir = repo.path();
        git(dir, &["init", "-q", "-b", "main"], 0);
        git(
            dir,
            &["commit", "-q", "--allow-empty", "-m", "one"],
            1_000_000_000,
        );
        let first = git(dir, &["rev-parse", "HEAD"], 0);
        git(
            dir,
            &["commit", "-q", "--allow-empty", "-m", "two"],
            1_100_000_000,
        );
        let head = git(dir, &["rev-parse", "HEAD"], 0);

        // The time asked first (the hash is found on the way, with it, in one git run).
        let time_first = GitFacts::new(dir.to_owned(), GitOverrides::default());
        assert_eq!(time_first.commit_time(), Some(1_100_000_000));
        assert_eq!(time_first.sha().unwrap(), head);

        let facts = GitFacts::new(dir.to_owned(), GitOverrides::default());
        assert_eq!(facts.sha().unwrap(), head);
        assert_eq!(facts.short_sha().unwrap(), &head[..7]);
        assert_eq!(facts.branch().unwrap(), "main");
        assert_eq!(
            source_date_epoch(None, &facts).unwrap(),
            (1_100_000_000, EpochSource::Git)
        );
        // The environment's SOURCE_DATE_EPOCH wins over the commit.
        let env = std::ffi::OsString::from("5");
        assert_eq!(
            source_date_epoch(Some(&env), &facts).unwrap(),
            (5, EpochSource::Env)
        );

        // HIVE_GIT_SHA names the commit for everything: its time is that commit's, not HEAD's.
        let pinned = GitOverrides {
            sha: Some(first.clone()),
            branch: Some("release".to_owned()),
        };
        let facts = GitFacts::new(dir.to_owned(), pinned);
        assert_eq!(facts.sha().unwrap(), first);
        assert_eq!(facts.branch().unwrap(), "release");
        assert_eq!(
            source_date_epoch(None, &facts).unwrap(),
            (1_000_000_000, EpochSource::Git)
        );

        // A commit the checkout does not have (or no commit at all) has no time: nothing is made up.
        for sha in ["0123456789abcdef0123456789abcdef01234567", "--version"] {
            let facts = GitFacts::new(
                dir.to_owned(),
                GitOverrides {
                    sha: Some(sha.to_owned()),
                    branch: None,
                },
            );
            assert_eq!(facts.sha().unwrap(), sha);
            assert_eq!(facts.commit_time(), None, "{sha}");
        }
    }

    #[test]
    fn outside_git_the_facts_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let facts = GitFacts::new(dir.path().to_owned(), GitOverrides::default());
        let error = facts.sha().unwrap_err().to_string();
        assert!(
            error.starts_with("`git rev-parse HEAD` failed in "),
            "{error}"
        );
        assert_eq!(facts.commit_time(), None);
        assert_eq!(
            source_date_epoch(None, &facts).unwrap(),
            (0, EpochSource::Zero)
        );
        assert_eq!(
            facts.branch().unwrap_err().to_string(),
            "HEAD is not on a branch (a detached checkout?); set HIVE_GIT_BRANCH to name one"
        );
    }

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
