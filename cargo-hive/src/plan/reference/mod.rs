//! Image references and tags. References are parsed by `image` (the distribution reference grammar that Docker
//! and BuildKit use, without a regex); tags follow the OCI distribution spec's `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.

mod image;

use hive_build::plan::Base;

pub(crate) use image::{ImageReference, ReferenceError};

/// Why a value is not valid: a sentence, and a hint when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) reason: String,
    pub(crate) help: Option<String>,
}

impl Invalid {
    pub(super) fn new(reason: impl Into<String>, help: Option<String>) -> Invalid {
        Invalid {
            reason: reason.into(),
            help,
        }
    }
}

fn explain(text: &str, err: ReferenceError) -> Invalid {
    // The grammar rejects uppercase as a format error; say what is actually wrong.
    let lowercase = text.to_lowercase();
    if text != lowercase && ImageReference::parse(&lowercase).is_ok() {
        return Invalid::new(
            "repository names must be lowercase",
            Some(format!("write `{}`", text.to_lowercase())),
        );
    }
    let help = match err {
        ReferenceError::DigestLength | ReferenceError::DigestUnsupported => {
            "a digest is `sha256:` followed by 64 hex digits"
        }
        _ => {
            "a reference looks like `registry.example.com/team/name:tag` or `name@sha256:<64 hex digits>`"
        }
    };
    Invalid::new(err.to_string(), Some(help.to_owned()))
}

/// Parses `base`: `scratch`, `hive:<image>` or a registry reference (returned fully qualified).
pub(crate) fn parse_base(text: &str) -> Result<Base, Invalid> {
    if text == "scratch" {
        return Ok(Base::Scratch);
    }
    if let Some(image) = text.strip_prefix("hive:") {
        return Ok(Base::Hive {
            image: image.to_owned(),
        });
    }
    let reference = ImageReference::parse(text).map_err(|err| explain(text, err))?;
    Ok(Base::Image {
        reference: reference.whole(),
    })
}

/// The registry host of a reference, as Docker and BuildKit name it (`localhost:5000/a/b:1` → `localhost:5000`,
/// `debian` → `docker.io`): the key for its credentials.
pub(crate) fn registry_host(reference: &str) -> Result<String, Invalid> {
    let parsed = ImageReference::parse(reference).map_err(|err| explain(reference, err))?;
    Ok(parsed.registry().to_owned())
}

/// Checks a repository: a reference name without tag or digest.
pub(crate) fn check_repository(text: &str) -> Result<(), Invalid> {
    if ImageReference::parse(&format!("{text}:tag")).is_ok() {
        return Ok(());
    }
    match ImageReference::parse(text) {
        Ok(_) => Err(Invalid::new(
            "a repository has no tag or digest",
            Some(
                "set tags with `tags`; `repository` is only the name, like `ghcr.io/acme/api`"
                    .to_owned(),
            ),
        )),
        Err(err) => Err(explain(text, err)),
    }
}

/// Checks a rendered tag against the OCI grammar.
pub(crate) fn check_tag(tag: &str) -> Result<(), Invalid> {
    let help = Some(
        "a tag has 1 to 128 of `A-Z a-z 0-9 _ . -` and does not start with `.` or `-`".to_owned(),
    );
    let mut bytes = tag.bytes();
    match bytes.next() {
        None => return Err(Invalid::new("a tag cannot be empty", help)),
        Some(first) if !(first.is_ascii_alphanumeric() || first == b'_') => {
            return Err(Invalid::new(
                format!("a tag cannot start with `{}`", first as char),
                help,
            ));
        }
        Some(_) => {}
    }
    if let Some(bad) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(Invalid::new(
            format!("`{bad}` is not allowed in a tag"),
            help,
        ));
    }
    if tag.len() > 128 {
        return Err(Invalid::new(
            format!(
                "a tag has at most 128 characters, this one has {}",
                tag.len()
            ),
            help,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts() {
        for (reference, host) in [
            ("localhost:5000/hive/glibc:latest", "localhost:5000"),
            ("localhost/a:1", "localhost"),
            ("ghcr.io/acme/api:1", "ghcr.io"),
            (
                "registry.example.com:5443/team/name@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "registry.example.com:5443",
            ),
            ("docker.io/library/debian:12", "docker.io"),
            ("index.docker.io/library/debian:12", "docker.io"),
            ("acme/api:1", "docker.io"),
            ("debian", "docker.io"),
        ] {
            assert_eq!(registry_host(reference).unwrap(), host, "{reference}");
        }
        assert!(registry_host("Not A Reference").is_err());
    }

    #[test]
    fn bases() {
        assert_eq!(parse_base("scratch").unwrap(), Base::Scratch);
        assert_eq!(
            parse_base("hive:api").unwrap(),
            Base::Hive {
                image: "api".into()
            }
        );
        assert_eq!(
            parse_base("debian:12-slim").unwrap(),
            Base::Image {
                reference: "docker.io/library/debian:12-slim".into()
            }
        );
        assert_eq!(
            parse_base("gcr.io/distroless/cc-debian12").unwrap(),
            Base::Image {
                reference: "gcr.io/distroless/cc-debian12:latest".into()
            }
        );
        let digest = format!("alpine@sha256:{}", "a".repeat(64));
        assert!(parse_base(&digest).is_ok());
        assert_eq!(
            parse_base("Debian:12").unwrap_err().reason,
            "repository names must be lowercase"
        );
        assert!(parse_base("debian:12:13").is_err());
        assert!(parse_base("alpine@sha256:abc").is_err());
        assert!(parse_base("").is_err());
    }

    #[test]
    fn repositories() {
        assert!(check_repository("ghcr.io/acme/api").is_ok());
        assert!(check_repository("localhost:5000/api").is_ok());
        assert!(check_repository("api").is_ok());
        assert_eq!(
            check_repository("ghcr.io/acme/api:1").unwrap_err().reason,
            "a repository has no tag or digest"
        );
        assert!(check_repository("ghcr.io/acme//api").is_err());
        assert!(check_repository("acme/API").is_err());
    }

    #[test]
    fn tags() {
        for ok in ["latest", "1.2.3", "_x", "v1-rc.1_a", &"a".repeat(128)] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a+b", "é", &"a".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }
}
