//! Image references (`name[:tag][@digest]`) parsed by hand, no regex: the distribution reference grammar that Docker
//! and BuildKit use, accepting exactly what `oci-spec`'s `Reference::try_from` accepts and normalized the same way
//! (Docker Hub's `docker.io` and `library/`, `latest` when there is neither tag nor digest). `oci-spec` compiles a
//! large Unicode regex for it on the first parse, tens of milliseconds of CPU on every run; this costs microseconds.

use std::fmt;
use std::str::FromStr;

/// The longest repository (the name without its registry), in bytes, as the distribution grammar allows.
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The longest tag, in characters.
const TAG_LENGTH_MAX: usize = 128;
/// The fewest hex digits of a digest that the grammar accepts, before the algorithm's own length is checked.
const DIGEST_HEX_MIN: usize = 32;

const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const OFFICIAL_NAMESPACE: &str = "library";
const DEFAULT_TAG: &str = "latest";

/// Why a text is not an image reference. The words are `oci-spec`'s (and so distribution's), which users already
/// meet in Docker's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReferenceError {
    /// The text is empty.
    #[error("repository name must have at least one component")]
    Empty,
    /// The text does not follow the grammar.
    #[error("invalid reference format")]
    Format,
    /// The repository is longer than the grammar allows.
    #[error("repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")]
    NameTooLong,
    /// The digest's hex part does not have its algorithm's length.
    #[error("invalid checksum digest length")]
    DigestLength,
    /// The digest's algorithm is not sha256, sha384 or sha512.
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
}

/// A parsed, normalized image reference: `registry/repository[:tag][@digest]`, with at least a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ImageReference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageReference {
    /// Parses and normalizes `text` (`debian` → `docker.io/library/debian:latest`).
    pub(crate) fn parse(text: &str) -> Result<ImageReference, ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        // Neither a name nor a tag holds `@`, and no digest holds a second one.
        let (named, digest) = match text.split_once('@') {
            Some((named, digest)) => (named, Some(digest)),
            None => (text, None),
        };
        if digest.is_some_and(|digest| !is_digest(digest)) {
            return Err(ReferenceError::Format);
        }
        let (name, tag) = split_tag(named);
        if tag.is_some_and(|tag| !is_tag(tag)) || !is_name(name) {
            return Err(ReferenceError::Format);
        }
        let (registry, repository) = split_domain(name);
        if repository.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        if let Some(digest) = digest {
            check_digest_length(digest)?;
        }
        let tag = match (tag, digest) {
            (None, None) => Some(DEFAULT_TAG),
            (tag, _) => tag,
        };
        Ok(ImageReference {
            registry,
            repository,
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// The registry host, with its port: `docker.io` for Docker Hub.
    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository within the registry: `library/debian`, `team/name`.
    pub(crate) fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` when the text had neither tag nor digest).
    pub(crate) fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, `algorithm:hex`, if any.
    pub(crate) fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The whole normalized reference, `registry/repository[:tag][@digest]`.
    pub(crate) fn whole(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<ImageReference, ReferenceError> {
        ImageReference::parse(text)
    }
}

/// The name and the tag of `name[:tag]`. A `:` is a tag's only after the last `/`: before it, it can only be a
/// registry's port.
fn split_tag(named: &str) -> (&str, Option<&str>) {
    match named.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (named, None),
    }
}

/// `[\w][\w.-]{0,127}`, where `\w` is Unicode's word class (as in `oci-spec`'s regex; Go's is ASCII).
fn is_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    chars.next().is_some_and(is_word)
        && chars.all(|c| is_word(c) || c == '.' || c == '-')
        && tag.chars().count() <= TAG_LENGTH_MAX
}

fn is_word(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        // A table lookup, not a regex.
        regex_syntax::is_word_character(c)
    }
}

/// `[domain/]component[/component]*`.
fn is_name(name: &str) -> bool {
    let mut parts = name.split('/');
    let Some(first) = parts.next() else {
        return false;
    };
    let rest: Vec<&str> = parts.collect();
    if !rest.iter().all(|part| is_path_component(part)) {
        return false;
    }
    is_path_component(first) || (!rest.is_empty() && is_domain(first))
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !(bytes.first().is_some_and(alnum) && bytes.last().is_some_and(alnum)) {
        return false;
    }
    bytes
        .split(alnum)
        .filter(|separator| !separator.is_empty())
        .all(|separator| {
            matches!(separator, b"." | b"_" | b"__") || separator.iter().all(|&b| b == b'-')
        })
}

/// `host[:port]`: DNS-like labels joined by `.`, a decimal port. (The grammar `oci-spec` follows has no bracketed
/// IPv6 hosts.)
fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let is_port = |port: &str| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    host.split('.').all(is_label) && port.is_none_or(is_port)
}

/// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let ends = |b: &u8| b.is_ascii_alphanumeric();
    bytes.first().is_some_and(ends)
        && bytes.last().is_some_and(ends)
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `algorithm:hex`: algorithm components `[A-Za-z][A-Za-z0-9]*` joined by one of `-_+.`, then at least 32 hex digits.
fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let is_component = |component: &str| {
        let bytes = component.as_bytes();
        bytes.first().is_some_and(u8::is_ascii_alphabetic)
            && bytes.iter().all(u8::is_ascii_alphanumeric)
    };
    algorithm.split(['-', '_', '+', '.']).all(is_component)
        && hex.len() >= DIGEST_HEX_MIN
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The hex part's length for the algorithms the grammar knows; any other algorithm is refused.
fn check_digest_length(digest: &str) -> Result<(), ReferenceError> {
    let (algorithm, hex) = digest.split_once(':').ok_or(ReferenceError::Format)?;
    let expected = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ReferenceError::DigestUnsupported),
    };
    if hex.len() == expected {
        Ok(())
    } else {
        Err(ReferenceError::DigestLength)
    }
}

/// The registry and the repository of a valid name, normalized as Docker does: a first component that has no `.`
/// or `:` and is not `localhost` is not a registry (Docker Hub's); `index.docker.io` is `docker.io`; a Docker Hub
/// repository of one component is in `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, remainder) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => (DOCKER_HUB, name),
    };
    if domain == DOCKER_HUB_LEGACY {
        domain = DOCKER_HUB;
    }
    let repository = if domain == DOCKER_HUB && !remainder.contains('/') {
        format!("{OFFICIAL_NAMESPACE}/{remainder}")
    } else {
        remainder.to_owned()
    };
    (domain.to_owned(), repository)
}

#[cfg(test)]
mod tests;
