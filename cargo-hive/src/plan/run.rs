//! `run`: each step's command, paths, cache mounts and secret ids checked, and each cache mount given its id (the
//! one written, else one derived from the workspace root and the mount's target, so it is the same from build to
//! build and apart from other workspaces' caches on the same daemon).

use std::collections::BTreeSet;
use std::path::Path;

use hive_build::plan::{PlanCacheMount, PlanRunStep};
use hive_build::schema::RunStep;
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, Diagnostics, Layer};

/// The steps of the layer that set `run`; mistakes go to `diags`.
pub(super) fn resolve(
    steps: &[RunStep],
    layer: &Layer,
    root: &Path,
    diags: &mut Diagnostics,
) -> Vec<PlanRunStep> {
    steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let mut check = Check {
                layer,
                diags,
                path: format!("run[{index}]"),
            };
            check.step(step, root)
        })
        .collect()
}

struct Check<'a, 'd> {
    layer: &'a Layer,
    diags: &'d mut Diagnostics,
    path: String,
}

impl Check<'_, '_> {
    fn error(&mut self, code: &'static str, at: &str, message: String, label: &str, help: &str) {
        let place = self.layer.place(&format!("{}{at}", self.path));
        self.diags
            .push(ConfigError::new(code, &place, message, label).help(help));
    }

    fn step(&mut self, step: &RunStep, root: &Path) -> PlanRunStep {
        let args = step.command.args();
        if args.last().is_none_or(|last| last.trim().is_empty()) {
            let message = format!("`{}` has an empty command", self.path);
            self.error(
                "empty-command",
                "",
                message,
                "empty",
                "write the command to run, e.g. `run = [\"update-ca-certificates\"]`",
            );
        }
        if args
            .iter()
            .chain(step.env.values())
            .any(|arg| arg.contains('\0'))
        {
            let message = format!(
                "`{}` has a NUL byte in its command or environment",
                self.path
            );
            self.error(
                "nul-byte",
                "",
                message,
                "NUL byte",
                "a command line cannot carry NUL bytes",
            );
        }
        for key in step.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                let message = format!("invalid environment variable name `{key}`");
                self.error(
                    "invalid-env",
                    &format!(".env.{key}#key"),
                    message,
                    "invalid name",
                    "a name is not empty and has no `=`",
                );
            }
        }
        if let Some(workdir) = &step.workdir {
            self.absolute(".workdir", "workdir", workdir);
        }
        if let Some(user) = step
            .user
            .as_deref()
            .filter(|user| user.is_empty() || user.contains(char::is_whitespace))
        {
            let message = format!("invalid user `{user}` in `{}`", self.path);
            self.error("invalid-user", ".user", message, "invalid", "a user is a name or uid, optionally with a group: `nonroot`, `65532`, `65532:65532`");
        }
        let cache = self.caches(step, root);
        let mut secrets: Vec<String> = step.secrets.clone();
        for (index, id) in secrets.iter().enumerate() {
            if id.is_empty() || id.contains(['/', '\0']) || id.contains(char::is_whitespace) {
                let message = format!("invalid secret id `{id}`");
                self.error("invalid-secret-id", &format!(".secrets[{index}]"), message, "invalid id", "a secret id is a name without `/` or spaces; it is mounted at `/run/secrets/<id>`");
            }
        }
        secrets.sort();
        secrets.dedup();
        for (name, id) in &step.secret_env {
            if name.is_empty() || name.contains(['=', '\0']) {
                let message = format!("invalid variable name `{name}` in `{}`", self.path);
                self.error(
                    "invalid-env",
                    &format!(".secret-env.{name}#key"),
                    message,
                    "invalid name",
                    "a name is not empty and has no `=`",
                );
            }
            if id.is_empty() || id.contains(['/', '\0']) || id.contains(char::is_whitespace) {
                let message = format!("invalid secret id `{id}`");
                self.error(
                    "invalid-secret-id",
                    &format!(".secret-env.{name}"),
                    message,
                    "invalid id",
                    "a secret id is a name without `/` or spaces, declared in `secrets`",
                );
            }
        }
        PlanRunStep {
            args,
            env: step.env.clone(),
            workdir: step.workdir.clone(),
            user: step.user.clone(),
            network: step.network.unwrap_or_default(),
            cache,
            secrets,
            secret_env: step.secret_env.clone(),
        }
    }

    fn caches(&mut self, step: &RunStep, root: &Path) -> Vec<PlanCacheMount> {
        let mut targets = BTreeSet::new();
        let mut mounts = Vec::with_capacity(step.cache.len());
        for (index, mount) in step.cache.iter().enumerate() {
            let at = format!(".cache[{index}]");
            self.absolute(&format!("{at}.target"), "cache target", &mount.target);
            let target = mount.target.trim_end_matches('/');
            if target.is_empty() && mount.target.starts_with('/') {
                let message = format!("a cache mount of `{}` cannot be `/`", self.path);
                self.error(
                    "invalid-cache-target",
                    &format!("{at}.target"),
                    message,
                    "the root",
                    "mount a cache on a directory such as `/var/cache/apt`",
                );
            }
            if !targets.insert(target.to_owned()) {
                let message = format!("`{}` mounts two caches at `{}`", self.path, mount.target);
                self.error(
                    "duplicate-cache-target",
                    &format!("{at}.target"),
                    message,
                    "mounted twice",
                    "give each cache mount its own target",
                );
            }
            if let Some(id) = mount
                .id
                .as_deref()
                .filter(|id| id.is_empty() || id.contains('\0'))
            {
                let message = format!("invalid cache id `{id}`");
                self.error(
                    "invalid-cache-id",
                    &format!("{at}.id"),
                    message,
                    "invalid id",
                    "leave `id` out to get one derived from the workspace and the target",
                );
            }
            mounts.push(PlanCacheMount {
                target: mount.target.clone(),
                id: mount
                    .id
                    .clone()
                    .unwrap_or_else(|| default_cache_id(root, target)),
                sharing: mount.sharing.unwrap_or_default(),
            });
        }
        mounts
    }

    fn absolute(&mut self, at: &str, what: &str, path: &str) {
        if !path.starts_with('/') {
            let message = format!(
                "the {what} of `{}` must be an absolute path, not `{path}`",
                self.path
            );
            let help = format!("write `/{}`", path.trim_start_matches("./"));
            self.error("relative-path", at, message, "relative", &help);
        }
    }
}

/// `hive-<16 hex digits>` of the workspace root and the target: stable across builds and checkouts of the same
/// path, apart between workspaces.
pub(crate) fn default_cache_id(root: &Path, target: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(root.as_os_str().as_encoded_bytes());
    hasher.update([0]);
    hasher.update(target.as_bytes());
    format!("hive-{}", &hex::encode(hasher.finalize())[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cache_ids_are_stable_and_apart_per_workspace_and_target() {
        let id = default_cache_id(Path::new("/ws/a"), "/var/cache/apt");
        assert_eq!(id, default_cache_id(Path::new("/ws/a"), "/var/cache/apt"));
        assert_eq!(id.len(), "hive-".len() + 16);
        assert_ne!(id, default_cache_id(Path::new("/ws/b"), "/var/cache/apt"));
        assert_ne!(id, default_cache_id(Path::new("/ws/a"), "/var/lib/apt"));
        // Not a plain concatenation: `/ws/a` + `b/c` is not `/ws/ab` + `/c`.
        assert_ne!(
            default_cache_id(Path::new("/ws/a"), "b/c"),
            default_cache_id(Path::new("/ws/ab"), "/c")
        );
    }
}
