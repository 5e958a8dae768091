//! The listing of a local dir as BuildKit's file sync wants it: one fsutil `Stat` per entry in directory-walk
//! order (each dir's entries byte-sorted, depth-first, a dir's contents right after it), filtered by include and
//! exclude patterns, with the parents of included entries listed before them.
//!
//! Symlinks are listed as symlinks and never followed, so nothing outside the root is ever listed. Sockets, pipes
//! and devices are left out: they have no place in an image built from a workspace.
//!
//! Staged files (our own files, such as the workspace's binaries under `.hive/bin/`) are listed as if they were in
//! the dir, with the dirs they need: nothing is written into the user's tree. They go through the same filter as
//! the dir's own files, and shadow an entry of the tree at the same path (a dir of the tree is merged).

use std::collections::BTreeMap;
use std::ffi::OsString;
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
    /// A staged file that is not a regular file.
    #[error("{path}, staged as {relative}, is not a regular file")]
    StagedNotAFile {
        /// Where it is served.
        relative: String,
        /// The file on disk.
        path: PathBuf,
    },
    /// A name the protocol cannot carry (its paths are UTF-8 strings).
    #[error("{path} is not valid UTF-8, which BuildKit's file sync cannot transfer")]
    NotUtf8 {
        /// The path, lossily shown.
        path: PathBuf,
    },
}

/// Lists `root` in walk order.
#[cfg(test)]
pub(crate) fn list(root: &Path, filter: &Filter) -> Result<Vec<Entry>, WalkError> {
    list_with(root, &StagedTree::default(), filter)
}

/// Lists `root` in walk order with `staged` files among its own, filtered alike.
pub(crate) fn list_with(
    root: &Path,
    staged: &StagedTree,
    filter: &Filter,
) -> Result<Vec<Entry>, WalkError> {
    let owner = fs::metadata(root).map_err(|source| WalkError::Io {
        path: root.to_owned(),
        source,
    })?;
    let mut walk = Walk {
        filter,
        owner: (owner.uid(), owner.gid()),
        pending: Vec::new(),
        out: Vec::new(),
    };
    walk.visit(Some(root), root, "", Some(staged))?;
    Ok(walk.out)
}

/// Files served as if they were in a dir (relative path → file on disk), checked and arranged as a tree.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct StagedTree {
    children: BTreeMap<String, StagedNode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum StagedNode {
    File(PathBuf),
    Dir(StagedTree),
}

/// A staged path that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StagedError {
    /// Not a plain relative path (absolute, empty segments, `.` or `..`).
    #[error(
        "the staged path {0:?} is not a plain relative path (no leading `/`, `.`, `..` or empty segments)"
    )]
    NotRelative(String),
    /// Both a file and a directory of other staged files.
    #[error("the staged path {0:?} is both a file and the directory of another staged file")]
    FileAndDir(String),
}

impl StagedTree {
    /// Arranges `staged` (relative path → file on disk) as a tree.
    pub(crate) fn new(staged: &BTreeMap<String, PathBuf>) -> Result<StagedTree, StagedError> {
        let mut tree = StagedTree::default();
        for (path, source) in staged {
            let segments: Vec<&str> = path.split('/').collect();
            let plain = segments
                .iter()
                .all(|segment| !matches!(*segment, "" | "." | ".."));
            if !plain {
                return Err(StagedError::NotRelative(path.clone()));
            }
            let (file, dirs) = segments
                .split_last()
                .expect("split yields one segment at least");
            let mut node = &mut tree;
            for dir in dirs {
                let child = node
                    .children
                    .entry((*dir).to_owned())
                    .or_insert_with(|| StagedNode::Dir(StagedTree::default()));
                node = match child {
                    StagedNode::Dir(below) => below,
                    StagedNode::File(_) => return Err(StagedError::FileAndDir(path.clone())),
                };
            }
            // Paths come sorted, so a file is never inserted where a directory already is but by a longer path
            // sorted after it (`a` < `a/b`): both orders are caught.
            if node.children.contains_key(*file) {
                return Err(StagedError::FileAndDir(path.clone()));
            }
            node.children
                .insert((*file).to_owned(), StagedNode::File(source.clone()));
        }
        Ok(tree)
    }

    /// The newest modification time of the files below, in Unix nanoseconds (0 for none).
    fn newest_mtime(&self) -> i64 {
        self.children
            .values()
            .map(|node| match node {
                StagedNode::File(source) => fs::metadata(source)
                    .map(|metadata| mtime_nanos(&metadata))
                    .unwrap_or(0),
                StagedNode::Dir(below) => below.newest_mtime(),
            })
            .max()
            .unwrap_or(0)
    }
}

/// One walk: the filter, the owner of dirs that exist only for staged files, and the listing so far.
struct Walk<'a> {
    filter: &'a Filter,
    owner: (u32, u32),
    /// Dirs walked into but not listed yet: listed before the first entry listed below them.
    pending: Vec<Entry>,
    out: Vec<Entry>,
}

/// What a dir's child is: an entry, and where to look below it when it is a dir.
struct Child<'s> {
    entry: Entry,
    below: Option<(Option<PathBuf>, Option<&'s StagedTree>)>,
}

impl Walk<'_> {
    /// Lists what is below `dir` (on disk when it is `Some`, else only staged) and `staged` at `relative`.
    fn visit(
        &mut self,
        dir: Option<&Path>,
        root: &Path,
        relative: &str,
        staged: Option<&StagedTree>,
    ) -> Result<(), WalkError> {
        let mut names = match dir {
            Some(dir) => read_names(dir)?,
            None => Vec::new(),
        };
        if let Some(staged) = staged {
            names.extend(staged.children.keys().map(OsString::from));
        }
        // Go sorts names as byte strings.
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        names.dedup();
        for name in names {
            let path = match dir {
                Some(dir) => dir.join(&name),
                None => root.join(relative).join(&name),
            };
            let name = name
                .to_str()
                .ok_or_else(|| WalkError::NotUtf8 { path: path.clone() })?;
            let child_path = if relative.is_empty() {
                name.to_owned()
            } else {
                format!("{relative}/{name}")
            };
            let node = staged.and_then(|staged| staged.children.get(name));
            let child = match node {
                Some(StagedNode::File(source)) => Some(staged_file(child_path.clone(), source)?),
                Some(StagedNode::Dir(below)) => {
                    Some(self.staged_dir(child_path.clone(), path, below)?)
                }
                None => real_child(child_path.clone(), path)?,
            };
            if let Some(child) = child {
                self.take(root, &child_path, child)?;
            }
        }
        Ok(())
    }

    /// Lists `child` if the filter lets it through, and walks below it if it is a dir that may hold something
    /// listed.
    fn take(&mut self, root: &Path, relative: &str, child: Child<'_>) -> Result<(), WalkError> {
        let included = self.filter.included(relative);
        let excluded = self.filter.excluded(relative);
        let listed = included && !excluded;
        let Some((dir, staged)) = child.below else {
            if listed {
                self.out.append(&mut self.pending);
                self.out.push(child.entry);
            }
            return Ok(());
        };
        if listed {
            self.out.append(&mut self.pending);
            self.out.push(child.entry);
        } else if !self.filter.descend(relative, included, excluded) {
            return Ok(());
        } else {
            self.pending.push(child.entry);
        }
        let depth = self.pending.len();
        self.visit(dir.as_deref(), root, relative, staged)?;
        // Nothing listed inside: the dir is not listed either.
        self.pending
            .truncate(depth.saturating_sub(usize::from(!listed)));
        Ok(())
    }

    /// A dir that staged files are in: the dir on disk when there is one (merged with them), else one that
    /// exists only for them (mode 755, owned like the root, dated as its newest staged file).
    fn staged_dir<'s>(
        &self,
        relative: String,
        path: PathBuf,
        below: &'s StagedTree,
    ) -> Result<Child<'s>, WalkError> {
        if let Some(metadata) = lstat(&path)?
            && metadata.is_dir()
        {
            let mode = go_mode(metadata.mode()).expect("a dir has a Go mode");
            let entry = Entry {
                stat: stat(relative, mode, &metadata, String::new()),
                dev: metadata.dev(),
                ino: metadata.ino(),
                path: path.clone(),
            };
            return Ok(Child {
                entry,
                below: Some((Some(path), Some(below))),
            });
        }
        // A file or symlink of the tree in the way is shadowed, as the staged files below it are.
        let stat = Stat {
            path: relative,
            mode: GO_MODE_DIR | 0o755,
            uid: self.owner.0,
            gid: self.owner.1,
            mod_time: below.newest_mtime(),
            ..Default::default()
        };
        let entry = Entry {
            stat,
            path,
            dev: 0,
            ino: 0,
        };
        Ok(Child {
            entry,
            below: Some((None, Some(below))),
        })
    }
}

/// The names in `dir`.
fn read_names(dir: &Path) -> Result<Vec<OsString>, WalkError> {
    let io_error = |source| WalkError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for item in fs::read_dir(dir).map_err(io_error)? {
        names.push(item.map_err(io_error)?.file_name());
    }
    Ok(names)
}

/// `lstat`, with `None` for nothing there.
fn lstat(path: &Path) -> Result<Option<Metadata>, WalkError> {
    match fs::symlink_metadata(path) {
        Ok(metadata) => Ok(Some(metadata)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(WalkError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// An entry of the tree on disk; `None` when it is gone since the dir was read, or of a kind we don't list.
fn real_child<'s>(relative: String, path: PathBuf) -> Result<Option<Child<'s>>, WalkError> {
    // Removed since read_dir: as if it was never there.
    let Some(metadata) = lstat(&path)? else {
        return Ok(None);
    };
    let Some(mode) = go_mode(metadata.mode()) else {
        return Ok(None);
    };
    let linkname = if mode & GO_MODE_SYMLINK != 0 {
        let target = fs::read_link(&path).map_err(|source| WalkError::Io {
            path: path.clone(),
            source,
        })?;
        target
            .to_str()
            .ok_or_else(|| WalkError::NotUtf8 { path: path.clone() })?
            .to_owned()
    } else {
        String::new()
    };
    let below = metadata.is_dir().then(|| (Some(path.clone()), None));
    let entry = Entry {
        stat: stat(relative, mode, &metadata, linkname),
        dev: metadata.dev(),
        ino: metadata.ino(),
        path,
    };
    Ok(Some(Child { entry, below }))
}

/// A staged file: listed with the stat of the file on disk (symlinks followed: the file is ours to name), read
/// from there, and checked for changes while sent like any other.
fn staged_file<'s>(relative: String, source: &Path) -> Result<Child<'s>, WalkError> {
    let metadata = fs::metadata(source).map_err(|err| WalkError::Io {
        path: source.to_owned(),
        source: err,
    })?;
    if !metadata.is_file() {
        return Err(WalkError::StagedNotAFile {
            relative,
            path: source.to_owned(),
        });
    }
    let mode = go_mode(metadata.mode()).expect("a regular file has a Go mode");
    let entry = Entry {
        stat: stat(relative, mode, &metadata, String::new()),
        path: source.to_owned(),
        dev: metadata.dev(),
        ino: metadata.ino(),
    };
    Ok(Child { entry, below: None })
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
        mod_time: mtime_nanos(metadata),
        linkname,
        ..Default::default()
    }
}

/// A modification time in Unix nanoseconds, as fsutil sends it.
fn mtime_nanos(metadata: &Metadata) -> i64 {
    metadata
        .mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(metadata.mtime_nsec())
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

    /// `staged` (relative path → file on disk) as a tree.
    fn staged(files: &[(&str, &Path)]) -> StagedTree {
        let map = files
            .iter()
            .map(|(relative, path)| ((*relative).to_owned(), path.to_path_buf()))
            .collect();
        StagedTree::new(&map).unwrap()
    }

    fn staged_paths(root: &Path, staged: &StagedTree, filter: &Filter) -> Vec<String> {
        list_with(root, staged, filter)
            .unwrap()
            .into_iter()
            .map(|entry| entry.stat.path)
            .collect()
    }

    #[test]
    fn staged_files_take_their_place_in_walk_order_with_their_parents() {
        let dir = tree();
        let bins = tempfile::tempdir().unwrap();
        let (amd64, arm) = (bins.path().join("api-x86"), bins.path().join("api-arm"));
        fs::write(&amd64, b"x86 binary").unwrap();
        fs::write(&arm, b"arm").unwrap();
        let staged = staged(&[
            (".hive/bin/linux/amd64/api", &amd64),
            (".hive/bin/linux/arm/v7/api", &arm),
            ("a/c/staged", &arm),
        ]);
        assert_eq!(
            staged_paths(dir.path(), &staged, &Filter::default()),
            [
                ".hive",
                ".hive/bin",
                ".hive/bin/linux",
                ".hive/bin/linux/amd64",
                ".hive/bin/linux/amd64/api",
                ".hive/bin/linux/arm",
                ".hive/bin/linux/arm/v7",
                ".hive/bin/linux/arm/v7/api",
                "B",
                "a",
                "a/b",
                "a/c",
                "a/c/d",
                "a/c/staged",
                "a-b",
                "a.txt",
                "empty",
                "link",
                "z",
                "z/y",
                "z/y/x.txt"
            ]
        );
        // Nothing was written into the tree.
        assert!(!dir.path().join(".hive").exists());
        assert!(!dir.path().join("a/c/staged").exists());
    }

    #[test]
    fn staged_entries_carry_their_files_stat_and_made_up_dirs_a_plain_one() {
        let dir = tree();
        let bins = tempfile::tempdir().unwrap();
        let binary = bins.path().join("api");
        fs::write(&binary, b"binary").unwrap();
        fs::set_permissions(&binary, fs::Permissions::from_mode(0o750)).unwrap();
        // A symlink to the binary is followed: the staged source is ours to name.
        symlink(&binary, bins.path().join("via-link")).unwrap();
        let staged = staged(&[("bin/api", &bins.path().join("via-link"))]);
        let entries = list_with(dir.path(), &staged, &Filter::default()).unwrap();
        let find = |path: &str| entries.iter().find(|e| e.stat.path == path).unwrap();
        let file = find("bin/api");
        let metadata = fs::metadata(&binary).unwrap();
        assert_eq!(file.stat.mode, 0o750);
        assert_eq!(file.stat.size, 6);
        assert_eq!(file.stat.mod_time, mtime_nanos(&metadata));
        assert_eq!((file.dev, file.ino), (metadata.dev(), metadata.ino()));
        assert!(file.is_file());
        // The changed-while-sent check reads the file on disk.
        assert_eq!(file.path, bins.path().join("via-link"));
        let made_up = find("bin");
        let root = fs::metadata(dir.path()).unwrap();
        assert_eq!(made_up.stat.mode, GO_MODE_DIR | 0o755);
        assert_eq!(
            (made_up.stat.uid, made_up.stat.gid),
            (root.uid(), root.gid())
        );
        assert_eq!(made_up.stat.mod_time, mtime_nanos(&metadata));
        assert!(!made_up.is_file());
    }

    #[test]
    fn staged_files_obey_the_patterns_like_the_trees_own() {
        let dir = tree();
        let bins = tempfile::tempdir().unwrap();
        let binary = bins.path().join("api");
        fs::write(&binary, b"binary").unwrap();
        let staged = staged(&[
            (".hive/bin/linux/amd64/api", &binary),
            (".hive/bin/linux/arm64/api", &binary),
        ]);
        let root = dir.path();
        // A `.dockerignore` excluding `.hive` hides them.
        assert_eq!(
            staged_paths(
                root,
                &staged,
                &filter(root, &[], &[".hive", "a", "z"], None)
            ),
            ["B", "a-b", "a.txt", "empty", "link"]
        );
        // An exception re-includes one, with its parents.
        assert_eq!(
            staged_paths(
                root,
                &staged,
                &filter(root, &[], &["*", "!.hive/bin/linux/arm64"], None)
            ),
            [
                ".hive",
                ".hive/bin",
                ".hive/bin/linux",
                ".hive/bin/linux/arm64",
                ".hive/bin/linux/arm64/api"
            ]
        );
        // Follow paths (what the Dockerfile frontend asks for when it knows its COPY sources) find them.
        let follow = Filter::new(
            root,
            Patterns::default(),
            Patterns::default(),
            &[".hive/bin/linux/amd64/api".into()],
            None,
        );
        assert_eq!(
            staged_paths(root, &staged, &follow),
            [
                ".hive",
                ".hive/bin",
                ".hive/bin/linux",
                ".hive/bin/linux/amd64",
                ".hive/bin/linux/amd64/api"
            ]
        );
        // And the allowlist.
        assert_eq!(
            staged_paths(root, &staged, &filter(root, &[], &[], Some(&["B"]))),
            ["B"]
        );
    }

    #[test]
    fn staged_files_shadow_the_trees_entries_and_merge_with_its_dirs() {
        let dir = tree();
        let root = dir.path();
        fs::create_dir_all(root.join(".hive/bin")).unwrap();
        fs::write(root.join(".hive/bin/api"), b"stale").unwrap();
        fs::write(root.join(".hive/notes"), b"kept").unwrap();
        let bins = tempfile::tempdir().unwrap();
        let binary = bins.path().join("api");
        fs::write(&binary, b"fresh binary").unwrap();
        // `a/b` is a file of the tree; a staged file below it makes it a dir.
        let staged = staged(&[(".hive/bin/api", &binary), ("a/b/api", &binary)]);
        let entries = list_with(root, &staged, &Filter::default()).unwrap();
        let listed: Vec<&str> = entries.iter().map(|e| e.stat.path.as_str()).collect();
        assert_eq!(
            listed[..8],
            [
                ".hive",
                ".hive/bin",
                ".hive/bin/api",
                ".hive/notes",
                "B",
                "a",
                "a/b",
                "a/b/api"
            ]
        );
        let find = |path: &str| entries.iter().find(|e| e.stat.path == path).unwrap();
        assert_eq!(find(".hive/bin/api").path, binary);
        assert_eq!(find(".hive/bin/api").stat.size, 12);
        assert_eq!(find(".hive/bin").path, root.join(".hive/bin"));
        assert_eq!(find("a/b").stat.mode, GO_MODE_DIR | 0o755);
    }

    #[test]
    fn staged_paths_are_checked() {
        let file = PathBuf::from("/bin/true");
        for bad in ["/abs", "a//b", "./a", "a/../b", "a/", ""] {
            let map = BTreeMap::from([(bad.to_owned(), file.clone())]);
            assert_eq!(
                StagedTree::new(&map),
                Err(StagedError::NotRelative(bad.to_owned())),
                "{bad:?}"
            );
        }
        let both = BTreeMap::from([
            ("a".to_owned(), file.clone()),
            ("a/b".to_owned(), file.clone()),
        ]);
        assert_eq!(
            StagedTree::new(&both),
            Err(StagedError::FileAndDir("a/b".to_owned()))
        );
        let dir = tempfile::tempdir().unwrap();
        let not_a_file = staged(&[("x", dir.path())]);
        let error = list_with(dir.path(), &not_a_file, &Filter::default()).unwrap_err();
        assert!(matches!(error, WalkError::StagedNotAFile { .. }), "{error}");
    }
}
