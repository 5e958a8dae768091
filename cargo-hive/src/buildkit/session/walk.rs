//! The listing of a local dir as BuildKit's file sync wants it: one fsutil `Stat` per entry in directory-walk
//! order (each dir's entries byte-sorted, depth-first, a dir's contents right after it), filtered by include and
//! exclude patterns, with the parents of included entries listed before them.
//!
//! Symlinks are listed as symlinks and never followed, so nothing outside the root is ever listed. Sockets, pipes
//! and devices are left out: they have no place in an image built from a workspace.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hive_proto::fsutil::types::Stat;

use super::patterns::Patterns;

/// Go's `os.FileMode` bits (fsutil sends those, not Unix modes).
const GO_MODE_DIR: u32 = 1 << 31;
const GO_MODE_SYMLINK: u32 = 1 << 27;
const GO_MODE_SETUID: u32 = 1 << 23;
const GO_MODE_SETGID: u32 = 1 << 22;
const GO_MODE_STICKY: u32 = 1 << 20;

/// How many symlinks resolving one follow path may cross before we give up (a loop).
const MAX_LINK_HOPS: usize = 40;

/// Which entries of a dir are listed.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    /// Every set must match an entry (or one of its parents) for it to be listed.
    includes: Vec<Patterns>,
    exclude: Patterns,
}

impl Filter {
    /// The filter for one DiffCopy call: the daemon's include patterns extended with the follow paths and their
    /// resolved symlink targets (as fsutil does), its exclude patterns, and our own allowlist, if any.
    pub(crate) fn new(
        root: &Path,
        mut include: Patterns,
        exclude: Patterns,
        follow_paths: &[String],
        allow: Option<Patterns>,
    ) -> Filter {
        if !follow_paths.is_empty() {
            include.extend(Patterns::literal(&follow_links(root, follow_paths)));
        }
        let mut includes = Vec::new();
        if !include.is_empty() {
            includes.push(include);
        }
        // An empty allowlist allows nothing, unlike an empty list of include patterns.
        includes.extend(allow);
        Filter { includes, exclude }
    }

    fn included(&self, path: &str) -> bool {
        self.includes.iter().all(|set| set.matches(path))
    }

    fn excluded(&self, path: &str) -> bool {
        self.exclude.matches(path)
    }

    /// Whether the walk must look inside a dir that is not listed itself.
    fn descend(&self, dir: &str, included: bool, excluded: bool) -> bool {
        let may_include = included
            || self
                .includes
                .iter()
                .all(|set| set.matches(dir) || set.may_match_below(dir));
        let may_not_exclude = !excluded || self.exclude.has_exclusions();
        may_include && may_not_exclude
    }
}

/// One listed entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// What the daemon gets.
    pub(crate) stat: Stat,
    /// Where it is on disk.
    pub(crate) path: PathBuf,
    /// Identity at listing time, checked again when the file is opened, so that a file swapped for something
    /// else (a symlink to outside the root) after the listing is never read.
    pub(crate) dev: u64,
    /// See `dev`.
    pub(crate) ino: u64,
}

impl Entry {
    /// Whether the daemon may ask for this entry's content.
    pub(crate) fn is_file(&self) -> bool {
        self.stat.mode & (GO_MODE_DIR | GO_MODE_SYMLINK) == 0
    }
}

/// Why a dir could not be listed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WalkError {
    /// A filesystem error.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The failing path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A name the protocol cannot carry (its paths are UTF-8 strings).
    #[error("{path} is not valid UTF-8, which BuildKit's file sync cannot transfer")]
    NotUtf8 {
        /// The path, lossily shown.
        path: PathBuf,
    },
}

/// Lists `root` in walk order.
pub(crate) fn list(root: &Path, filter: &Filter) -> Result<Vec<Entry>, WalkError> {
    let mut out = Vec::new();
    let mut pending = Vec::new();
    visit(root, "", filter, &mut pending, &mut out)?;
    Ok(out)
}

fn visit(
    dir: &Path,
    relative: &str,
    filter: &Filter,
    pending: &mut Vec<Entry>,
    out: &mut Vec<Entry>,
) -> Result<(), WalkError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| WalkError::Io { path, source }
    };
    let mut names = Vec::new();
    for item in fs::read_dir(dir).map_err(io_error(dir))? {
        names.push(item.map_err(io_error(dir))?.file_name());
    }
    // Go sorts names as byte strings.
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let path = dir.join(&name);
        let name = name
            .to_str()
            .ok_or_else(|| WalkError::NotUtf8 { path: path.clone() })?;
        let child = if relative.is_empty() {
            name.to_owned()
        } else {
            format!("{relative}/{name}")
        };
        let metadata = match fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            // Removed since read_dir: as if it was never there.
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(io_error(&path)(err)),
        };
        let Some(mode) = go_mode(metadata.mode()) else {
            continue;
        };
        let linkname = if mode & GO_MODE_SYMLINK != 0 {
            let target = fs::read_link(&path).map_err(io_error(&path))?;
            target
                .to_str()
                .ok_or_else(|| WalkError::NotUtf8 { path: path.clone() })?
                .to_owned()
        } else {
            String::new()
        };
        let entry = Entry {
            stat: stat(child.clone(), mode, &metadata, linkname),
            path,
            dev: metadata.dev(),
            ino: metadata.ino(),
        };
        let included = filter.included(&child);
        let excluded = filter.excluded(&child);
        let listed = included && !excluded;
        if metadata.is_dir() {
            if listed {
                out.append(pending);
                out.push(entry.clone());
            } else if !filter.descend(&child, included, excluded) {
                continue;
            } else {
                pending.push(entry.clone());
            }
            let depth = pending.len();
            visit(&entry.path, &child, filter, pending, out)?;
            // Nothing listed inside: the dir is not listed either.
            pending.truncate(depth.saturating_sub(usize::from(!listed)));
        } else if listed {
            out.append(pending);
            out.push(entry);
        }
    }
    Ok(())
}

/// The fsutil `Stat` of an entry.
fn stat(path: String, mode: u32, metadata: &Metadata, linkname: String) -> Stat {
    Stat {
        path,
        mode,
        uid: metadata.uid(),
        gid: metadata.gid(),
        // fsutil leaves a dir's size at 0; a symlink's is its target's length, as lstat says.
        size: if metadata.is_dir() {
            0
        } else {
            i64::try_from(metadata.size()).unwrap_or(i64::MAX)
        },
        mod_time: metadata
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(metadata.mtime_nsec()),
        linkname,
        ..Default::default()
    }
}

/// A Unix `st_mode` as Go's `os.FileMode`, or `None` for what we don't list (sockets, pipes, devices).
pub(crate) fn go_mode(unix: u32) -> Option<u32> {
    let mut mode = unix & 0o777;
    for (unix_bit, go_bit) in [
        (0o4000, GO_MODE_SETUID),
        (0o2000, GO_MODE_SETGID),
        (0o1000, GO_MODE_STICKY),
    ] {
        if unix & unix_bit != 0 {
            mode |= go_bit;
        }
    }
    match unix & 0o170000 {
        0o100000 => Some(mode),
        0o040000 => Some(mode | GO_MODE_DIR),
        0o120000 => Some(mode | GO_MODE_SYMLINK),
        _ => None,
    }
}

/// The follow paths plus every path their symlinks lead to, resolved component by component inside `root` (an
/// absolute target is relative to the root; a target leaving the root is dropped).
fn follow_links(root: &Path, paths: &[String]) -> Vec<String> {
    let mut resolved = Vec::new();
    for path in paths {
        let mut hops = 0;
        let mut todo = vec![normalize(&[], path)];
        while let Some(segments) = todo.pop() {
            let Some(segments) = segments else { continue };
            if segments.is_empty() {
                continue;
            }
            let mut followed = false;
            for depth in 1..=segments.len() {
                let prefix = &segments[..depth];
                let on_disk = root.join(prefix.join("/"));
                let Ok(target) = fs::read_link(&on_disk) else {
                    continue;
                };
                let Some(target) = target.to_str() else { break };
                resolved.push(prefix.join("/"));
                hops += 1;
                if hops <= MAX_LINK_HOPS {
                    let base = if target.starts_with('/') {
                        &[][..]
                    } else {
                        &prefix[..depth - 1]
                    };
                    let rest = segments[depth..].join("/");
                    todo.push(normalize(base, &format!("{target}/{rest}")));
                }
                followed = true;
                break;
            }
            if !followed {
                resolved.push(segments.join("/"));
            }
        }
    }
    resolved.sort();
    resolved.dedup();
    resolved
}

/// `base` joined with the relative `path` and cleaned; `None` when it leaves the root.
fn normalize(base: &[String], path: &str) -> Option<Vec<String>> {
    let mut segments = base.to_vec();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            other => segments.push(other.to_owned()),
        }
    }
    Some(segments)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in ["a.txt", "a/b", "a/c/d", "a-b", "B", "z/y/x.txt"] {
            let path = root.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, file).unwrap();
        }
        fs::create_dir(root.join("empty")).unwrap();
        symlink("a/b", root.join("link")).unwrap();
        dir
    }

    fn paths(root: &Path, filter: &Filter) -> Vec<String> {
        list(root, filter)
            .unwrap()
            .into_iter()
            .map(|entry| entry.stat.path)
            .collect()
    }

    fn filter(root: &Path, include: &[&str], exclude: &[&str], allow: Option<&[&str]>) -> Filter {
        Filter::new(
            root,
            Patterns::new(include).unwrap(),
            Patterns::new(exclude).unwrap(),
            &[],
            allow.map(Patterns::literal),
        )
    }

    #[test]
    fn walk_order_is_depth_first_with_byte_sorted_names() {
        let dir = tree();
        assert_eq!(
            paths(dir.path(), &Filter::default()),
            [
                "B",
                "a",
                "a/b",
                "a/c",
                "a/c/d",
                "a-b",
                "a.txt",
                "empty",
                "link",
                "z",
                "z/y",
                "z/y/x.txt"
            ]
        );
    }

    #[test]
    fn include_patterns_list_parents_first_and_nothing_else() {
        let dir = tree();
        let root = dir.path();
        assert_eq!(
            paths(root, &filter(root, &["a/c/d", "z/**/*.txt"], &[], None)),
            ["a", "a/c", "a/c/d", "z", "z/y", "z/y/x.txt"]
        );
        assert_eq!(
            paths(root, &filter(root, &["a"], &[], None)),
            ["a", "a/b", "a/c", "a/c/d"]
        );
        assert!(paths(root, &filter(root, &["nothing"], &[], None)).is_empty());
    }

    #[test]
    fn exclude_patterns_and_exceptions() {
        let dir = tree();
        let root = dir.path();
        assert_eq!(
            paths(root, &filter(root, &[], &["a", "z", "*.txt"], None)),
            ["B", "a-b", "empty", "link"]
        );
        assert_eq!(
            paths(
                root,
                &filter(root, &[], &["a", "!a/c", "z", "B", "empty", "link"], None)
            ),
            ["a", "a/c", "a/c/d", "a-b", "a.txt"]
        );
    }

    #[test]
    fn allowlist_narrows_what_the_daemon_asked_for() {
        let dir = tree();
        let root = dir.path();
        assert_eq!(
            paths(root, &filter(root, &[], &[], Some(&["a/b", "link"]))),
            ["a", "a/b", "link"]
        );
        assert_eq!(
            paths(root, &filter(root, &["a"], &[], Some(&["a/b", "link"]))),
            ["a", "a/b"]
        );
        assert!(paths(root, &filter(root, &[], &[], Some(&[]))).is_empty());
    }

    #[test]
    fn modes_sizes_and_links() {
        let dir = tree();
        let root = dir.path();
        fs::set_permissions(root.join("B"), fs::Permissions::from_mode(0o4755)).unwrap();
        let entries = list(root, &Filter::default()).unwrap();
        let find = |path: &str| entries.iter().find(|e| e.stat.path == path).unwrap();
        let dir_entry = find("a");
        assert_eq!(dir_entry.stat.mode & !0o777, GO_MODE_DIR);
        assert_eq!(dir_entry.stat.size, 0);
        assert!(!dir_entry.is_file());
        let link = find("link");
        assert_eq!(link.stat.mode & !0o777, GO_MODE_SYMLINK);
        assert_eq!(link.stat.linkname, "a/b");
        assert_eq!(link.stat.size, 3);
        assert!(!link.is_file());
        let setuid = find("B");
        assert_eq!(setuid.stat.mode, GO_MODE_SETUID | 0o755);
        assert_eq!(setuid.stat.size, 1);
        assert!(setuid.is_file());
        let metadata = fs::metadata(root.join("B")).unwrap();
        assert_eq!(
            setuid.stat.mod_time,
            metadata.mtime() * 1_000_000_000 + metadata.mtime_nsec()
        );
        assert_eq!(setuid.stat.uid, metadata.uid());
    }

    #[test]
    fn go_modes() {
        assert_eq!(go_mode(0o100644), Some(0o644));
        assert_eq!(go_mode(0o040755), Some(GO_MODE_DIR | 0o755));
        assert_eq!(go_mode(0o120777), Some(GO_MODE_SYMLINK | 0o777));
        assert_eq!(go_mode(0o102755), Some(GO_MODE_SETGID | 0o755));
        assert_eq!(
            go_mode(0o041777),
            Some(GO_MODE_DIR | GO_MODE_STICKY | 0o777)
        );
        assert_eq!(go_mode(0o140755), None); // socket
        assert_eq!(go_mode(0o010644), None); // fifo
    }

    #[test]
    fn follow_paths_add_link_targets_inside_the_root() {
        let dir = tree();
        let root = dir.path();
        symlink("/z/y", root.join("abs")).unwrap();
        symlink("../../../outside", root.join("a/c/up")).unwrap();
        assert_eq!(follow_links(root, &["link".into()]), ["a/b", "link"]);
        assert_eq!(
            follow_links(root, &["abs/x.txt".into()]),
            ["abs", "z/y/x.txt"]
        );
        assert_eq!(follow_links(root, &["a/c/up".into()]), ["a/c/up"]);
        let filter = Filter::new(
            root,
            Patterns::default(),
            Patterns::default(),
            &["link".into()],
            None,
        );
        assert_eq!(paths(root, &filter), ["a", "a/b", "link"]);
    }

    #[test]
    fn symlink_loops_end() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        assert_eq!(follow_links(dir.path(), &["a".into()]), ["a", "b"]);
    }
}
