//! `cargo publish`'s rule for releases: a working tree with uncommitted changes is refused unless `--allow-dirty`,
//! so a released image always matches a commit.

use std::path::{Path, PathBuf};
use std::process::Command;

/// How many changed files the error lists before it says "and N more".
const LISTED: usize = 20;

/// The working tree's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TreeState {
    /// Everything is committed.
    Clean,
    /// These paths (relative to the workspace root, as git prints them) have uncommitted changes or are untracked.
    Dirty(Vec<String>),
    /// Not a git checkout: nothing to compare with (cargo publish proceeds too).
    NotGit,
}

/// Why a release may not start from this tree.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TreeError {
    /// Uncommitted changes.
    #[error(
        "{} in the working directory {} changes that were not yet committed into git:\n\n{}\n\nto proceed \
         despite this and release the uncommitted changes, pass the `--allow-dirty` flag",
        plural(.0.len(), "file"), if .0.len() == 1 { "contains" } else { "contain" }, listing(.0)
    )]
    Dirty(Vec<String>),
    /// Git could not say.
    #[error("`git status` failed in {}: {detail}", dir.display())]
    Git {
        /// The workspace root.
        dir: PathBuf,
        /// Git's stderr, or why it could not start.
        detail: String,
    },
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn listing(paths: &[String]) -> String {
    let mut lines: Vec<String> = paths.iter().take(LISTED).cloned().collect();
    if paths.len() > LISTED {
        lines.push(format!("… and {} more", paths.len() - LISTED));
    }
    lines.join("\n")
}

/// The state of the checkout holding `dir` (only paths under `dir` count, but for cargo's target dir when it is
/// inside: build output, not source, and a workspace without a `.gitignore` would always be dirty).
pub(crate) fn tree_state(dir: &Path, target_dir: &Path) -> Result<TreeState, TreeError> {
    let failed = |detail: String| TreeError::Git {
        dir: dir.to_path_buf(),
        detail,
    };
    let inside = Command::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .current_dir(dir)
        .output()
        .map_err(|err| failed(err.to_string()))?;
    if !inside.status.success() {
        return Ok(TreeState::NotGit);
    }
    let mut pathspecs = vec![".".to_owned()];
    if let Ok(inside) = target_dir.strip_prefix(dir)
        && !inside.as_os_str().is_empty()
    {
        pathspecs.push(format!(":(exclude){}", inside.display()));
    }
    let status = Command::new("git")
        .args([
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=normal",
            "--",
        ])
        .args(&pathspecs)
        .current_dir(dir)
        .output()
        .map_err(|err| failed(err.to_string()))?;
    if !status.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&status.stderr).trim().to_owned(),
        ));
    }
    let paths = changed_paths(&String::from_utf8_lossy(&status.stdout));
    Ok(if paths.is_empty() {
        TreeState::Clean
    } else {
        TreeState::Dirty(paths)
    })
}

/// The paths of `git status --porcelain=v1 -z`: `XY path`, a rename followed by its origin as a separate entry.
fn changed_paths(porcelain: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut entries = porcelain.split('\0').filter(|entry| !entry.is_empty());
    while let Some(entry) = entries.next() {
        let (code, path) = entry.split_at(entry.len().min(3));
        if code.starts_with('R') || code.starts_with('C') {
            entries.next();
        }
        paths.push(path.to_owned());
    }
    paths.sort();
    paths.dedup();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn porcelain_entries_become_paths() {
        let text = " M Cargo.toml\0?? new.rs\0R  to.rs\0from.rs\0";
        assert_eq!(changed_paths(text), ["Cargo.toml", "new.rs", "to.rs"]);
    }

    #[test]
    fn clean_dirty_and_not_git() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        assert_eq!(tree_state(dir.path(), &target).unwrap(), TreeState::NotGit);
        git(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        git(dir.path(), &["add", "."]);
        git(dir.path(), &["commit", "-q", "-m", "one"]);
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("out"), "o").unwrap();
        assert_eq!(tree_state(dir.path(), &target).unwrap(), TreeState::Clean);
        std::fs::write(dir.path().join("a.txt"), "b").unwrap();
        std::fs::write(dir.path().join("b.txt"), "b").unwrap();
        let TreeState::Dirty(paths) = tree_state(dir.path(), &target).unwrap() else {
            panic!("not dirty")
        };
        assert_eq!(paths, ["a.txt", "b.txt"]);
        assert_eq!(
            TreeError::Dirty(paths).to_string(),
            "2 files in the working directory contain changes that were not yet committed into git:\n\na.txt\n\
             b.txt\n\nto proceed despite this and release the uncommitted changes, pass the `--allow-dirty` flag"
        );
    }

    #[test]
    fn long_lists_are_cut() {
        let paths: Vec<String> = (0..25).map(|i| format!("f{i:02}")).collect();
        let text = TreeError::Dirty(paths).to_string();
        assert!(text.contains("f19\n… and 5 more"), "{text}");
        assert!(!text.contains("f20"), "{text}");
    }
}
