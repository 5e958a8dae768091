//! What builds remember for the next one in `target/hive/.fresh/`: the up-to-date records, the daemon's answers about
//! base digests, the sysroot rustc named, the last cargo run. Each is a shortcut, never the truth: a file that is
//! missing or cannot be read costs the next build its shortcut, nothing else.

use std::path::Path;

/// Writes `text` to `path` atomically (a temp file beside it, renamed), creating its directory; a failure is
/// silent, as it only costs the next build a shortcut.
pub(crate) fn keep(path: &Path, text: &str) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let Ok(mut temp) = tempfile::NamedTempFile::new_in(dir) else {
        return;
    };
    if std::io::Write::write_all(&mut temp, text.as_bytes()).is_ok() {
        let _ = temp.persist(path);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn kept_text_replaces_the_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/er/state.json");
        super::keep(&path, "one");
        super::keep(&path, "two");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
        // A path that cannot be written is no error.
        super::keep(Path::new("/proc/no/such/place"), "x");
    }
}
