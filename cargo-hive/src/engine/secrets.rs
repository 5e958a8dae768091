//! Build secrets read before anything is sent to the daemon: every secret of the images to build must resolve (its
//! environment variable set, its file readable) or the build stops, naming the secret and its source. A value is
//! never put in an error or a log; only the session of a solve that needs it serves it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use hive_build::SecretSource;
use hive_build::plan::{Plan, PlanImage};
use zeroize::Zeroizing;

use crate::buildkit::SecretValues;

/// Why a secret could not be read. Names the image, the secret and its source; never a value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    /// The environment variable is not set (or not valid UTF-8, which the process environment leaves out).
    #[error(
        "the secret `{id}` of image `{image}` is read from the environment variable `{variable}`, which is not set"
    )]
    Unset {
        /// The image declaring it.
        image: String,
        /// The secret's id.
        id: String,
        /// The variable's name.
        variable: String,
    },
    /// `~/` cannot be expanded.
    #[error(
        "the secret `{id}` of image `{image}` is read from `{file}`, but HOME is not set to expand `~`"
    )]
    NoHome {
        /// The image declaring it.
        image: String,
        /// The secret's id.
        id: String,
        /// The path as written.
        file: String,
    },
    /// The file cannot be read. The I/O error says why (not found, permission denied), never what is in it.
    #[error("the secret `{id}` of image `{image}` is read from {}, which could not be read", .path.display())]
    Unreadable {
        /// The image declaring it.
        image: String,
        /// The secret's id.
        id: String,
        /// The file, `~` expanded.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The values of every image's secrets, by image name then id.
#[derive(Default)]
pub(crate) struct ResolvedSecrets(BTreeMap<String, BTreeMap<String, Zeroizing<Vec<u8>>>>);

/// Ids only.
impl fmt::Debug for ResolvedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: BTreeMap<&str, Vec<&str>> = (self.0.iter())
            .map(|(image, values)| (image.as_str(), values.keys().map(String::as_str).collect()))
            .collect();
        f.debug_tuple("ResolvedSecrets").field(&ids).finish()
    }
}

impl ResolvedSecrets {
    /// What one solve serves: the secrets of `images` (the image first, then the rest of its `hive:` chain); an
    /// id declared by several takes the first image's value.
    pub(crate) fn for_solve<'a>(&self, images: impl IntoIterator<Item = &'a str>) -> SecretValues {
        let mut values = BTreeMap::new();
        for image in images {
            for (id, value) in self.0.get(image).into_iter().flatten() {
                values.entry(id.clone()).or_insert_with(|| value.clone());
            }
        }
        SecretValues::new(values)
    }
}

/// Reads the secrets of every image of the plan (those selected and their `hive:` bases), in name then id order;
/// the first that cannot be read is the error. `env` is the process environment, read once by the command.
pub(crate) fn resolve(
    plan: &Plan,
    env: &BTreeMap<String, String>,
) -> Result<ResolvedSecrets, SecretError> {
    let mut resolved = BTreeMap::new();
    for image in &plan.images {
        let mut values = BTreeMap::new();
        for (id, source) in used(image) {
            values.insert(id.to_owned(), read(&image.name, id, source, env)?);
        }
        if !values.is_empty() {
            resolved.insert(image.name.clone(), values);
        }
    }
    Ok(ResolvedSecrets(resolved))
}

/// The secrets an image's steps may mount: every one it declares, as a step may name any of them.
fn used(image: &PlanImage) -> impl Iterator<Item = (&str, &SecretSource)> {
    image
        .secrets
        .iter()
        .map(|(id, source)| (id.as_str(), source))
}

fn read(
    image: &str,
    id: &str,
    source: &SecretSource,
    env: &BTreeMap<String, String>,
) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    match source {
        SecretSource::Env(variable) => env
            .get(variable)
            .map(|value| Zeroizing::new(value.as_bytes().to_vec()))
            .ok_or_else(|| SecretError::Unset {
                image: image.to_owned(),
                id: id.to_owned(),
                variable: variable.clone(),
            }),
        SecretSource::File(file) => {
            let path = match file.strip_prefix('~') {
                Some(rest) => match env.get("HOME").filter(|home| !home.is_empty()) {
                    Some(home) => PathBuf::from(home).join(rest.trim_start_matches('/')),
                    None => {
                        return Err(SecretError::NoHome {
                            image: image.to_owned(),
                            id: id.to_owned(),
                            file: file.clone(),
                        });
                    }
                },
                None => PathBuf::from(file),
            };
            std::fs::read(&path)
                .map(Zeroizing::new)
                .map_err(|source| SecretError::Unreadable {
                    image: image.to_owned(),
                    id: id.to_owned(),
                    path,
                    source,
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use hive_build::plan::{Base, Binary, ImageConfig, PackageInfo};

    use super::*;

    fn image(name: &str, secrets: &[(&str, SecretSource)]) -> PlanImage {
        PlanImage {
            name: name.into(),
            package: PackageInfo {
                name: name.into(),
                version: "0.1.0".into(),
                manifest_path: "Cargo.toml".into(),
                description: None,
                license: None,
                repository: None,
                homepage: None,
            },
            declared_in: hive_build::plan::Origin::Default,
            binary: Binary {
                target: name.into(),
                path: format!("/usr/local/bin/{name}"),
            },
            repository: name.into(),
            tags: Vec::new(),
            references: Vec::new(),
            aliases: false,
            platforms: vec!["linux/amd64".into()],
            base: Base::Scratch,
            files: Vec::new(),
            config: ImageConfig::default(),
            sbom: false,
            compression: Default::default(),
            compression_level: None,
            secrets: (secrets.iter())
                .map(|(id, source)| ((*id).to_owned(), source.clone()))
                .collect(),
            origins: BTreeMap::new(),
            selected: true,
            dockerfile: None,
            per_platform: Vec::new(),
            run: Vec::new(),
            variant: None,
        }
    }

    fn plan(images: Vec<PlanImage>) -> Plan {
        Plan {
            format_version: 1,
            workspace_root: "/w".into(),
            profile: "dev".into(),
            images,
            edges: Vec::new(),
        }
    }

    fn env(vars: &[(&str, &str)]) -> BTreeMap<String, String> {
        (vars.iter())
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn env_and_file_sources_resolve_with_home_expanded() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".netrc"), b"machine m").unwrap();
        let plan = plan(vec![
            image(
                "api",
                &[
                    ("netrc", SecretSource::File("~/.netrc".into())),
                    ("token", SecretSource::Env("TOKEN".into())),
                ],
            ),
            image("base", &[("token", SecretSource::Env("BASE_TOKEN".into()))]),
        ]);
        let env = env(&[
            ("HOME", home.path().to_str().unwrap()),
            ("TOKEN", "top-value"),
            ("BASE_TOKEN", "base-value"),
        ]);
        let resolved = resolve(&plan, &env).unwrap();
        let shown = format!("{resolved:?}");
        assert_eq!(
            shown,
            r#"ResolvedSecrets({"api": ["netrc", "token"], "base": ["token"]})"#
        );
        let values = resolved.for_solve(["api", "base"]);
        assert_eq!(values.ids().collect::<Vec<_>>(), ["netrc", "token"]);
        let only_base = resolved.for_solve(["base"]);
        assert_eq!(only_base.ids().collect::<Vec<_>>(), ["token"]);
        assert!(!format!("{values:?}").contains("value"));
    }

    #[test]
    fn a_missing_source_names_the_secret_and_source_not_a_value() {
        let unset = resolve(
            &plan(vec![image(
                "api",
                &[("token", SecretSource::Env("NPM_TOKEN".into()))],
            )]),
            &env(&[]),
        )
        .unwrap_err();
        assert_eq!(
            unset.to_string(),
            "the secret `token` of image `api` is read from the environment variable `NPM_TOKEN`, which is not set"
        );
        let missing = resolve(
            &plan(vec![image(
                "api",
                &[("netrc", SecretSource::File("/nonexistent/netrc".into()))],
            )]),
            &env(&[]),
        )
        .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "the secret `netrc` of image `api` is read from /nonexistent/netrc, which could not be read"
        );
        let no_home = resolve(
            &plan(vec![image(
                "api",
                &[("netrc", SecretSource::File("~/.netrc".into()))],
            )]),
            &env(&[]),
        )
        .unwrap_err();
        assert!(matches!(no_home, SecretError::NoHome { .. }), "{no_home}");
    }
}
