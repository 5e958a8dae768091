//! The process environment, read once at start into one value that the commands hand down: nothing below the
//! command line reads a variable of its own.

use std::collections::BTreeMap;
use std::ffi::OsString;

use anstream::ColorChoice;

use crate::buildkit;

/// What `cargo hive` takes from its environment.
#[derive(Debug, Clone)]
pub(crate) struct ProcessEnv {
    /// Every variable that is valid UTF-8, for `{env.NAME}` templates.
    pub(crate) vars: BTreeMap<String, String>,
    /// What BuildKit discovery reads (`BUILDKIT_HOST`, `DOCKER_HOST`, `XDG_RUNTIME_DIR`, the user id).
    pub(crate) buildkit: buildkit::Environment,
    /// `CARGO`: the cargo that runs us as `cargo hive`, else `cargo` from `PATH`.
    pub(crate) cargo: OsString,
    /// `RUSTC`: the rustc cargo uses, else `rustc` from `PATH` (asked for its sysroot).
    pub(crate) rustc: OsString,
}

impl ProcessEnv {
    /// Reads the process environment.
    pub(crate) fn capture() -> ProcessEnv {
        let vars: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        ProcessEnv {
            cargo: std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            rustc: std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()),
            buildkit: buildkit::Environment::from_process(),
            vars,
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Whether a variable is set to something other than empty, `false` or `0`.
    fn flag(&self, name: &str) -> bool {
        self.var(name)
            .is_some_and(|value| !value.is_empty() && value != "false" && value != "0")
    }

    /// `CARGO_TERM_COLOR`, as cargo reads it: what `--color auto` means.
    pub(crate) fn term_color(&self) -> ColorChoice {
        match self.var("CARGO_TERM_COLOR") {
            Some("always") => ColorChoice::Always,
            Some("never") => ColorChoice::Never,
            _ => ColorChoice::Auto,
        }
    }

    /// Whether we run in CI: `CI` is set by GitHub Actions, GitLab, CircleCI, Travis, Buildkite and others;
    /// `TF_BUILD` by Azure Pipelines.
    pub(crate) fn is_ci(&self) -> bool {
        self.flag("CI") || self.flag("TF_BUILD")
    }

    /// `TERM=dumb`: a terminal that cannot move the cursor, treated like a pipe.
    pub(crate) fn dumb_terminal(&self) -> bool {
        self.var("TERM") == Some("dumb")
    }

    /// `HIVE_REDACT=1`: machine-specific paths in output become placeholders.
    pub(crate) fn redact(&self) -> bool {
        self.var("HIVE_REDACT") == Some("1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> ProcessEnv {
        ProcessEnv {
            vars: vars
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            buildkit: buildkit::Environment::default(),
            cargo: "cargo".into(),
            rustc: "rustc".into(),
        }
    }

    #[test]
    fn ci_and_colour_are_read_as_cargo_and_ci_systems_set_them() {
        assert!(env(&[("CI", "true")]).is_ci());
        assert!(env(&[("TF_BUILD", "True")]).is_ci());
        assert!(!env(&[("CI", "false")]).is_ci());
        assert!(!env(&[("CI", "0")]).is_ci());
        assert!(!env(&[("CI", "")]).is_ci());
        assert_eq!(
            env(&[("CARGO_TERM_COLOR", "never")]).term_color(),
            ColorChoice::Never
        );
        assert_eq!(env(&[]).term_color(), ColorChoice::Auto);
        assert!(env(&[("TERM", "dumb")]).dumb_terminal());
        assert!(env(&[("HIVE_REDACT", "1")]).redact());
    }
}
