//! `files`: each source checked on disk (it exists, is inside the workspace, and is a regular file or a directory)
//! and each destination checked against `/`, the binary and the other entries, so that nothing silently lands on
//! the binary or on another entry's path, and the daemon is never the one to find out.

use std::path::{Path, PathBuf};

use hive_build::plan::PlanFile;
use hive_build::schema::FileSpec;

use crate::config::{ConfigError, Diagnostics, Layer, Package, file_kind};

/// What a source is, as far as the destination checks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

/// One entry whose destination was checked, for the checks of the entries after it.
struct Placed<'a> {
    index: usize,
    spec: &'a FileSpec,
    dst: Vec<&'a str>,
    kind: Option<Kind>,
}

/// The image's files from the layer that set `files`; mistakes go to `diags`. `binary` is where the binary goes
/// (`None` when the binary itself did not resolve, so no collision is claimed against a made-up path).
pub(super) fn resolve(
    specs: &[FileSpec],
    layer: &Layer,
    package: &Package,
    root: &Path,
    binary: Option<&str>,
    diags: &mut Diagnostics,
) -> Vec<PlanFile> {
    let canonical_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut placed: Vec<Placed<'_>> = Vec::new();
    let mut files = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let source = package.dir().join(&spec.src);
        let kind = check_source(spec, &source, index, layer, package, &canonical_root, diags);
        if spec.dst.starts_with('/') {
            let dst = effective_destination(spec, kind, binary);
            let entry = Placed {
                index,
                spec,
                dst,
                kind,
            };
            let error = destination_error(&entry, &source, binary, &placed);
            if let Some(error) = error {
                diags.push(error.at(layer.place(&format!("files[{index}].dst"))));
            }
            placed.push(entry);
        } else {
            diags.push(
                ConfigError::new(
                    "relative-path",
                    &layer.place(&format!("files[{index}].dst")),
                    format!(
                        "`dst` must be an absolute path in the image, not `{}`",
                        spec.dst
                    ),
                    "relative",
                )
                .help(format!("write `/{}`", spec.dst.trim_start_matches("./"))),
            );
        }
        files.push(PlanFile {
            source: super::assemble::normalize(&source).display().to_string(),
            destination: spec.dst.clone(),
            mode: spec.mode,
        });
    }
    files
}

/// Checks that the source exists inside the workspace and can be copied; its kind when it can.
fn check_source(
    spec: &FileSpec,
    source: &Path,
    index: usize,
    layer: &Layer,
    package: &Package,
    root: &Path,
    diags: &mut Diagnostics,
) -> Option<Kind> {
    let place = layer.place(&format!("files[{index}].src"));
    let Ok(canonical) = source.canonicalize() else {
        let dir = match package.dir().strip_prefix(root) {
            Ok(dir) if dir.as_os_str().is_empty() => "the package directory".to_owned(),
            Ok(dir) => format!("`{}`", dir.display()),
            Err(_) => package.dir().display().to_string(),
        };
        diags.push(
            ConfigError::new(
                "missing-file",
                &place,
                format!(
                    "`{}` does not exist in package `{}`",
                    spec.src, package.name
                ),
                "not found",
            )
            .help(format!("`src` is relative to {dir}")),
        );
        return None;
    };
    if !canonical.starts_with(root) {
        diags.push(
            ConfigError::new(
                "file-outside-workspace",
                &place,
                format!("`{}` is outside the workspace", spec.src),
                "outside",
            )
            .help("files are sent to BuildKit from the workspace; copy or link them into it"),
        );
        return None;
    }
    // Follows symlinks: a link to a regular file or directory is copied as what it points at.
    let file_type = std::fs::metadata(&canonical).ok()?.file_type();
    if file_type.is_file() {
        return Some(Kind::File);
    }
    if file_type.is_dir() {
        return Some(Kind::Dir);
    }
    diags.push(
        ConfigError::new(
            "unsupported-file-type",
            &place,
            format!(
                "`{}` is {}, not a regular file or directory",
                spec.src,
                file_kind(file_type)
            ),
            "not a regular file or directory",
        )
        .help(
            "only regular files and directories (or symlinks to them) can be copied into an image",
        ),
    );
    None
}

/// A destination mistake, before it has a place.
struct DestinationError {
    code: &'static str,
    message: String,
    label: &'static str,
    help: String,
}

impl DestinationError {
    fn at(self, place: crate::config::Place) -> ConfigError {
        ConfigError::new(self.code, &place, self.message, self.label).help(self.help)
    }
}

/// Why the entry's destination cannot be used: it is `/`, collides with the binary, or with an earlier entry.
fn destination_error(
    entry: &Placed<'_>,
    source: &Path,
    binary: Option<&str>,
    earlier: &[Placed<'_>],
) -> Option<DestinationError> {
    let written = &entry.spec.dst;
    let shown = shown(written, &entry.dst);
    if image_path(written).is_empty() {
        return Some(DestinationError {
            code: "root-destination",
            message: format!("`dst = \"{written}\"` would copy over the root of the image"),
            label: "the image's root",
            help: "give the files a directory of their own, for example `dst = \"/srv/static\"`"
                .into(),
        });
    }
    if let Some(binary) = binary
        && let Some(error) = binary_collision(entry, &shown, source, binary)
    {
        return Some(error);
    }
    for other in earlier {
        let other_shown = shown_path(&other.dst);
        let (code, message) = if other.dst == entry.dst {
            (
                "duplicate-destination",
                format!(
                    "{shown} is already the destination of `files[{}]` (`src = \"{}\"`)",
                    other.index, other.spec.src
                ),
            )
        } else if other.kind == Some(Kind::File) && is_inside(&entry.dst, &other.dst) {
            (
                "destination-conflict",
                format!(
                    "{shown} is inside `{other_shown}`, where `files[{}]` puts the file `{}`",
                    other.index, other.spec.src
                ),
            )
        } else if entry.kind == Some(Kind::File) && is_inside(&other.dst, &entry.dst) {
            (
                "destination-conflict",
                format!(
                    "the file `{}` would go to {shown}, a directory holding `{other_shown}` of `files[{}]`",
                    entry.spec.src, other.index
                ),
            )
        } else {
            continue;
        };
        return Some(DestinationError {
            code,
            message,
            label: "collides",
            help: "each entry of `files` needs a destination of its own".into(),
        });
    }
    None
}

/// The entry's destination against the binary's path: the same path, a path inside it (the binary is a file), or
/// a directory copied over the binary's directory with a file where the binary goes.
fn binary_collision(
    entry: &Placed<'_>,
    shown: &str,
    source: &Path,
    binary: &str,
) -> Option<DestinationError> {
    let binary_dst = image_path(binary);
    let message = if entry.dst == binary_dst {
        format!("{shown} is where the binary goes")
    } else if is_inside(&entry.dst, &binary_dst) {
        format!("{shown} is inside `{binary}`, the binary (a file, not a directory)")
    } else if entry.kind == Some(Kind::Dir) && is_inside(&binary_dst, &entry.dst) {
        let rest: PathBuf = binary_dst[entry.dst.len()..].iter().collect();
        std::fs::symlink_metadata(source.join(&rest)).ok()?;
        format!(
            "copying `{}` to {shown} would replace the binary at `{binary}` with `{}`",
            entry.spec.src,
            Path::new(&entry.spec.src).join(rest).display()
        )
    } else {
        return None;
    };
    Some(DestinationError {
        code: "destination-is-binary",
        message,
        label: "the binary's path",
        help: format!(
            "the image's binary is `{binary}`; copy files somewhere else, for example under `/usr/local/share`"
        ),
    })
}

/// Where the entry lands, as the daemon copies: a file copied to a directory (a `dst` ending in `/`, or one of the
/// binary's directories, which exist by then) goes inside it under its own name; anything else lands at `dst`.
fn effective_destination<'a>(
    spec: &'a FileSpec,
    kind: Option<Kind>,
    binary: Option<&str>,
) -> Vec<&'a str> {
    let mut dst = image_path(&spec.dst);
    let into_dir = spec.dst.ends_with('/')
        || spec.dst.ends_with("/.")
        || binary.is_some_and(|binary| is_inside(&image_path(binary), &dst));
    let name = Path::new(&spec.src)
        .file_name()
        .and_then(|name| name.to_str());
    if let (Some(Kind::File), true, Some(name)) = (kind, into_dir, name) {
        dst.push(name);
    }
    dst
}

/// The components of an absolute image path, as the daemon resolves it: empty and `.` components dropped, `..`
/// going up (never above `/`).
fn image_path(path: &str) -> Vec<&str> {
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                components.pop();
            }
            name => components.push(name),
        }
    }
    components
}

/// Whether `path` is strictly below `dir`.
fn is_inside(path: &[&str], dir: &[&str]) -> bool {
    path.len() > dir.len() && path.starts_with(dir)
}

fn shown_path(components: &[&str]) -> String {
    format!("/{}", components.join("/"))
}

/// The destination as written, quoted, with its normal form when that differs.
fn shown(written: &str, components: &[&str]) -> String {
    let normal = shown_path(components);
    if normal == written {
        format!("`{normal}`")
    } else {
        format!("`{written}` (`{normal}`)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_are_compared_in_normal_form() {
        assert_eq!(image_path("/"), Vec::<&str>::new());
        assert_eq!(image_path("//./"), Vec::<&str>::new());
        assert_eq!(
            image_path("/usr//local/./bin/app/"),
            ["usr", "local", "bin", "app"]
        );
        assert_eq!(image_path("/usr/local/../../.."), Vec::<&str>::new());
        assert_eq!(image_path("/a/../b"), ["b"]);
        assert!(is_inside(&["a", "b"], &["a"]));
        assert!(!is_inside(&["a"], &["a"]));
        assert!(!is_inside(&["ab"], &["a"]));
        assert_eq!(shown("/a", &["a"]), "`/a`");
        assert_eq!(shown("/a//b/", &["a", "b"]), "`/a//b/` (`/a/b`)");
    }

    #[test]
    fn files_copied_into_directories_keep_their_names() {
        let spec = |src: &str, dst: &str| FileSpec {
            src: src.into(),
            dst: dst.into(),
            mode: None,
        };
        let bin = Some("/usr/local/bin/app");
        let file = Some(Kind::File);
        let at = |spec: &FileSpec, kind| effective_destination(spec, kind, bin).join("/");
        assert_eq!(at(&spec("conf/a.toml", "/etc/a.toml"), file), "etc/a.toml");
        assert_eq!(at(&spec("conf/a.toml", "/etc/"), file), "etc/a.toml");
        assert_eq!(at(&spec("conf/a.toml", "/etc/."), file), "etc/a.toml");
        // The binary's directories exist when files are copied.
        assert_eq!(
            at(&spec("tools/app", "/usr/local/bin"), file),
            "usr/local/bin/app"
        );
        assert_eq!(at(&spec("notes", "/usr"), file), "usr/notes");
        // A directory's contents land at `dst` itself.
        assert_eq!(
            at(&spec("static", "/srv/static/"), Some(Kind::Dir)),
            "srv/static"
        );
        assert_eq!(
            at(&spec("static", "/usr/local/bin"), Some(Kind::Dir)),
            "usr/local/bin"
        );
    }
}
