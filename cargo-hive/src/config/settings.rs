//! The workspace's settings beside its images: the BuildKit connection keys of `[workspace.metadata.hive]`, read once
//! with their places, so a bad address points at its line and `build` and `doctor` use the same value.

use std::path::{Path, PathBuf};

use crate::config::diagnostic::{ConfigError, Diagnostics};
use crate::config::manifest::{self, ConnectionKey};
use crate::config::workspace::{self, Selection};
use crate::errors::HiveError;

/// How `[workspace.metadata.hive]` says to reach BuildKit; paths are resolved against the manifest's directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConnectionSettings {
    /// The workspace manifest they came from.
    pub(crate) manifest: PathBuf,
    /// `buildkit = "…"`, already checked to be an address.
    pub(crate) buildkit: Option<String>,
    /// `tlscacert`.
    pub(crate) tlscacert: Option<PathBuf>,
    /// `tlscert`.
    pub(crate) tlscert: Option<PathBuf>,
    /// `tlskey`.
    pub(crate) tlskey: Option<PathBuf>,
    /// `tlsservername`.
    pub(crate) tlsservername: Option<String>,
}

impl ConnectionSettings {
    /// The settings of `keys`, read from `manifest`; an address that cannot work goes to `diags` at its place.
    pub(crate) fn from_keys(
        manifest: &Path,
        keys: Vec<ConnectionKey>,
        diags: &mut Diagnostics,
    ) -> ConnectionSettings {
        let base = manifest.parent().unwrap_or(Path::new("."));
        let mut settings = ConnectionSettings {
            manifest: manifest.to_path_buf(),
            ..ConnectionSettings::default()
        };
        for ConnectionKey { name, value, place } in keys {
            match name {
                "buildkit" => {
                    // `docker://` is checked against DOCKER_HOST when connecting; here only the form counts.
                    if let Err(err) = crate::buildkit::parse_address(&value, None) {
                        diags.push(
                            ConfigError::new(
                                "invalid-buildkit-address",
                                &place,
                                err.to_string(),
                                "not a BuildKit address",
                            )
                            .help("`buildkit` takes the address `--addr` takes"),
                        );
                        continue;
                    }
                    settings.buildkit = Some(value);
                }
                "tlscacert" => settings.tlscacert = Some(base.join(value)),
                "tlscert" => settings.tlscert = Some(base.join(value)),
                "tlskey" => settings.tlskey = Some(base.join(value)),
                "tlsservername" => settings.tlsservername = Some(value),
                other => unreachable!("connection key `{other}` has no reader"),
            }
        }
        settings
    }

    /// The form the BuildKit client takes.
    pub(crate) fn to_buildkit(&self) -> crate::buildkit::ManifestSettings {
        crate::buildkit::ManifestSettings {
            manifest: self.manifest.clone(),
            buildkit: self.buildkit.clone(),
            tls: crate::buildkit::TlsSettings {
                ca: self.tlscacert.clone(),
                cert: self.tlscert.clone(),
                key: self.tlskey.clone(),
                server_name: self.tlsservername.clone(),
            },
        }
    }
}

/// The connection settings alone, for `doctor`: the workspace is found as cargo finds it; outside any workspace
/// there are none. Mistakes in image definitions do not matter here and are not looked at.
pub(crate) fn connection_settings(
    manifest_path: Option<&Path>,
) -> Result<Option<ConnectionSettings>, HiveError> {
    match manifest_path {
        Some(path) if !path.is_file() => {
            return Err(HiveError::Input(format!(
                "no Cargo.toml at {}",
                path.display()
            )));
        }
        Some(_) => {}
        None if workspace::current_manifest(None).is_none() => return Ok(None),
        None => {}
    }
    let workspace = workspace::load(manifest_path, &Selection::default())?;
    let file = super::read(&workspace.root_manifest, &workspace.root)?;
    let mut diags = Diagnostics::default();
    let keys = manifest::read_connection(&file, &mut diags);
    let settings = ConnectionSettings::from_keys(&workspace.root_manifest, keys, &mut diags);
    diags.into_result()?;
    Ok(Some(settings))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::source::SourceFile;

    fn settings(text: &str) -> (ConnectionSettings, Vec<String>) {
        let file = Arc::new(SourceFile::new(
            "Cargo.toml".into(),
            "Cargo.toml".into(),
            text.into(),
        ));
        let mut diags = Diagnostics::default();
        let keys = manifest::read_connection(&file, &mut diags);
        let settings = ConnectionSettings::from_keys(Path::new("/ws/Cargo.toml"), keys, &mut diags);
        (settings, diags.messages())
    }

    #[test]
    fn keys_are_read_relative_to_the_manifest() {
        let (read, errors) = settings(
            "[workspace.metadata.hive]\nbuildkit = \"tcp://b:1\"\ntlscacert = \"certs/ca.pem\"\n\
             tlsservername = \"b\"\ntags = [\"x\"]\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(read.buildkit.as_deref(), Some("tcp://b:1"));
        assert_eq!(read.tlscacert, Some(PathBuf::from("/ws/certs/ca.pem")));
        assert_eq!(read.tlsservername.as_deref(), Some("b"));
        assert_eq!(read.to_buildkit().tls.ca, read.tlscacert);
    }

    #[test]
    fn a_bad_key_is_a_diagnostic_at_its_value() {
        let (_, errors) = settings("[workspace.metadata.hive]\nbuildkit = 3\n");
        assert_eq!(
            errors,
            ["wrong-type: `buildkit` must be a string, not an integer"]
        );
        let (read, errors) = settings("[workspace.metadata.hive]\nbuildkit = \"gopher://x\"\n");
        assert_eq!(read.buildkit, None);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("invalid-buildkit-address: `gopher://x` uses the unknown scheme"),
            "{errors:?}"
        );
    }
}
