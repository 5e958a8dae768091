//! Files of ours in `target/hive/` that outlive their build unless removed: the temp files exports stream into
//! (`.partial`), the docker archives `--load` goes through with a standalone buildkitd (`.load/`) and the layers a
//! solve packs for the daemon to read (`.pack.<image>.<pid>/`). Each name
//! carries the pid of the build that wrote it, so the next build can tell what a killed build (SIGKILL, a crash)
//! left from the files of a build still running beside it.

use std::path::{Path, PathBuf};

use crate::buildkit::partial_owner;

/// Where `--load` with a standalone buildkitd puts an image's docker archive before Docker reads it:
/// `target/hive/.load/<image>.<pid>.tar`.
pub(crate) fn load_archive_path(target_dir: &Path, image: &str) -> PathBuf {
    load_dir(target_dir).join(format!("{image}.{}.tar", std::process::id()))
}

fn load_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("hive").join(".load")
}

/// Where one image's solve packs its layers: `target/hive/.pack.<image>.<pid>/`, removed when the solve ends.
pub(crate) fn pack_dir_path(target_dir: &Path, image: &str) -> PathBuf {
    (target_dir.join("hive")).join(format!(".pack.{image}.{}", std::process::id()))
}

/// The pid in a pack directory's name (`.pack.<image>.<pid>`).
fn pack_dir_owner(name: &str) -> Option<u32> {
    let (image, pid) = name.strip_prefix(".pack.")?.rsplit_once('.')?;
    if image.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// The pid in a load archive's name (`<image>.<pid>.tar`).
fn load_archive_owner(file_name: &str) -> Option<u32> {
    let (image, pid) = file_name.strip_suffix(".tar")?.rsplit_once('.')?;
    if image.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// A file that is removed when this is dropped: on success, on error and when a cancelled build drops it.
#[derive(Debug)]
pub(crate) struct RemoveOnDrop(pub(crate) PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A directory that is removed with everything in it when this is dropped.
#[derive(Debug)]
pub(crate) struct RemoveDirOnDrop(pub(crate) PathBuf);

impl Drop for RemoveDirOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the partial archives and load archives of builds that are gone from `target/hive/` and
/// `target/hive/.load/`; returns what it removed. A file stays while the pid in its name is alive or while a
/// process holds it locked (an export holds its temp file locked while it writes).
pub(crate) fn remove_stale(target_dir: &Path) -> Vec<PathBuf> {
    let hive = target_dir.join("hive");
    let mut removed = Vec::new();
    for (dir, owner) in [
        (hive, partial_owner as fn(&str) -> Option<u32>),
        (load_dir(target_dir), partial_owner),
        (load_dir(target_dir), load_archive_owner),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(owner) else {
                continue;
            };
            let path = entry.path();
            let is_file = entry.file_type().is_ok_and(|kind| kind.is_file());
            if is_file && !in_use(&path, pid) && std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    let packs = std::fs::read_dir(target_dir.join("hive"))
        .into_iter()
        .flatten();
    for entry in packs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(pack_dir_owner) else {
            continue;
        };
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
        if is_dir && !alive(pid) && std::fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

fn in_use(path: &Path, pid: u32) -> bool {
    alive(pid) || locked(path)
}

fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // EPERM means it exists, as another user's process.
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

fn locked(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return true;
    };
    // Taking the lock proves nobody holds it; it goes with the file when we close it.
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pid of a process that has ended.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn removes_only_what_dead_builds_left() {
        let target = tempfile::tempdir().unwrap();
        let hive = target.path().join("hive");
        std::fs::create_dir_all(hive.join(".load")).unwrap();
        let dead = dead_pid();
        let live = std::process::id();
        let touch = |name: &str| {
            let path = hive.join(name);
            std::fs::write(&path, b"x").unwrap();
            path
        };
        let stale = [
            touch(&format!(".hello.oci.tar.{dead}.a1B2c3.partial")),
            touch(&format!(".load/.hello.{dead}.tar.{dead}.x9y8z7.partial")),
            touch(&format!(".load/hello.{dead}.tar")),
        ];
        let kept = [
            touch(&format!(".hello.oci.tar.{live}.a1B2c3.partial")),
            touch(&format!(".load/hello.{live}.tar")),
            touch(".hello.oci.tar.a1B2c3.partial"),
            touch("hello.oci.tar"),
            touch(&format!("notes.{dead}.tar")),
        ];
        // A dead pid (reused by a process in another pid namespace, say) but a lock held: in use.
        let locked = touch(&format!(".other.oci.tar.{dead}.q1w2e3.partial"));
        let holder = std::fs::File::open(&locked).unwrap();
        rustix::fs::flock(&holder, rustix::fs::FlockOperation::LockExclusive).unwrap();

        let mut removed = remove_stale(target.path());
        removed.sort();
        let mut expected = stale.to_vec();
        expected.sort();
        assert_eq!(removed, expected);
        for path in kept.iter().chain([&locked]) {
            assert!(path.exists(), "{} was removed", path.display());
        }
        drop(holder);
        assert_eq!(remove_stale(target.path()), [locked]);
    }

    #[test]
    fn load_archives_name_their_build() {
        let path = load_archive_path(Path::new("/t"), "api.v2");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(load_archive_owner(name), Some(std::process::id()));
        assert_eq!(path.parent(), Some(Path::new("/t/hive/.load")));
        assert_eq!(load_archive_owner("hello.tar"), None);
        assert_eq!(load_archive_owner(".1.tar"), None);
    }
}
