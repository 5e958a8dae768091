//! How one thing becomes facts of an SPDX package: SPDX ids, declared licenses, download locations and package
//! URLs, for crates (from their cargo source id) and for images (from their references).

use hive_build::spdx::NOASSERTION;

use crate::plan::ImageReference;

/// The crates.io index, as cargo names it in source ids (git and sparse protocol).
const CRATES_IO: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

/// `SPDXRef-<kind>-<parts joined by ->`, every character outside `[A-Za-z0-9.-]` replaced by `-` (SPDX ids allow
/// only those).
pub(crate) fn spdx_id(kind: &str, parts: &[&str]) -> String {
    let mut id = format!("SPDXRef-{kind}");
    for part in parts {
        id.push('-');
        id.extend(part.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        }));
    }
    id
}

/// The SPDX expression of a crate's `license` field: cargo's old `/` separator means OR; a field that is absent,
/// empty or not a well-formed expression is `NOASSERTION` (an invalid expression would make the document invalid).
pub(crate) fn license_declared(license: Option<&str>) -> String {
    let Some(license) = license else {
        return NOASSERTION.to_owned();
    };
    let expression = license
        .split('/')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" OR ");
    if well_formed(&expression) {
        expression
    } else {
        NOASSERTION.to_owned()
    }
}

/// A shallow check of an SPDX license expression: ids, `AND`/`OR`/`WITH` between them, balanced parentheses.
fn well_formed(expression: &str) -> bool {
    let spaced = expression.replace('(', " ( ").replace(')', " ) ");
    let mut depth = 0usize;
    // Whether the next token must be an operand (a license id or an opening parenthesis).
    let mut want_operand = true;
    for token in spaced.split_whitespace() {
        match token {
            "(" if want_operand => depth += 1,
            ")" if !want_operand && depth > 0 => depth -= 1,
            "AND" | "OR" | "WITH" if !want_operand => want_operand = true,
            id if want_operand && is_license_id(id) => want_operand = false,
            _ => return false,
        }
    }
    depth == 0 && !want_operand
}

fn is_license_id(token: &str) -> bool {
    let id = token.strip_suffix('+').unwrap_or(token);
    !id.is_empty()
        && !matches!(id, "AND" | "OR" | "WITH")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == ':')
}

/// Where a crate comes from, from its cargo source id: crates.io's download URL, another registry's index URL,
/// `git+<url>@<commit>` for git, `NOASSERTION` for a path (nothing to download).
pub(crate) fn download_location(name: &str, version: &str, source: Option<&str>) -> String {
    let Some(source) = source else {
        return NOASSERTION.to_owned();
    };
    if CRATES_IO.contains(&source) {
        return format!("https://crates.io/api/v1/crates/{name}/{version}/download");
    }
    if let Some(rest) = source.strip_prefix("git+") {
        // `git+<url>?<branch|tag|rev>=…#<commit>`: the commit is what was built.
        let (url, commit) = rest.split_once('#').unwrap_or((rest, ""));
        let url = url.split_once('?').map_or(url, |(url, _query)| url);
        return if commit.is_empty() {
            format!("git+{url}")
        } else {
            format!("git+{url}@{commit}")
        };
    }
    for prefix in ["registry+", "sparse+"] {
        if let Some(index) = source.strip_prefix(prefix) {
            return index.to_owned();
        }
    }
    NOASSERTION.to_owned()
}

/// A crate's package URL.
pub(crate) fn crate_purl(name: &str, version: &str) -> String {
    format!("pkg:cargo/{name}@{version}")
}

/// An image's package URL, `pkg:docker/<repository>@<version>` with `repository_url` when the registry is not
/// Docker Hub. `pkg:docker` (not `pkg:oci`) because its version may be a tag as well as a digest: the image being
/// built has no digest yet when its SBOM is made.
pub(crate) fn image_purl(reference: &str, version: Option<&str>) -> Option<String> {
    let parsed = ImageReference::parse(reference).ok()?;
    let version = version
        .map(str::to_owned)
        .or_else(|| parsed.digest().map(str::to_owned))
        .or_else(|| parsed.tag().map(str::to_owned))?;
    let mut purl = format!("pkg:docker/{}@{version}", parsed.repository());
    if parsed.registry() != "docker.io" {
        purl.push_str("?repository_url=");
        purl.push_str(parsed.registry());
    }
    Some(purl)
}

/// The tag of a reference, if it has one.
pub(crate) fn tag(reference: &str) -> Option<String> {
    ImageReference::parse(reference)
        .ok()
        .and_then(|parsed| parsed.tag().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spdx_ids_keep_only_what_spdx_allows() {
        assert_eq!(
            spdx_id("crate", &["serde_json", "1.0.0+build.7"]),
            "SPDXRef-crate-serde-json-1.0.0-build.7"
        );
        assert_eq!(spdx_id("image", &["api"]), "SPDXRef-image-api");
    }

    #[test]
    fn licenses_map_to_spdx_expressions() {
        let cases = [
            (Some("MIT OR Apache-2.0"), "MIT OR Apache-2.0"),
            (Some("MIT/Apache-2.0"), "MIT OR Apache-2.0"),
            (Some("MIT / Apache-2.0"), "MIT OR Apache-2.0"),
            (
                Some("(MIT OR Apache-2.0) AND Unicode-3.0"),
                "(MIT OR Apache-2.0) AND Unicode-3.0",
            ),
            (
                Some("Apache-2.0 WITH LLVM-exception"),
                "Apache-2.0 WITH LLVM-exception",
            ),
            (Some("GPL-2.0+"), "GPL-2.0+"),
            (Some("LicenseRef-Acme"), "LicenseRef-Acme"),
            (None, "NOASSERTION"),
            (Some(""), "NOASSERTION"),
            (Some("MIT OR"), "NOASSERTION"),
            (Some("(MIT"), "NOASSERTION"),
            (Some("see LICENSE file"), "NOASSERTION"),
        ];
        for (license, expected) in cases {
            assert_eq!(license_declared(license), expected, "{license:?}");
        }
    }

    #[test]
    fn download_locations_follow_the_source() {
        let at = |source| download_location("itoa", "1.0.19", source);
        let crates_io = "https://crates.io/api/v1/crates/itoa/1.0.19/download";
        assert_eq!(
            at(Some(
                "registry+https://github.com/rust-lang/crates.io-index"
            )),
            crates_io
        );
        assert_eq!(at(Some("sparse+https://index.crates.io/")), crates_io);
        assert_eq!(
            at(Some("sparse+https://crates.example.com/index/")),
            "https://crates.example.com/index/"
        );
        assert_eq!(
            at(Some("registry+https://git.example.com/index")),
            "https://git.example.com/index"
        );
        assert_eq!(
            at(Some(
                "git+https://github.com/acme/itoa?branch=main#0123456789abcdef0123456789abcdef01234567"
            )),
            "git+https://github.com/acme/itoa@0123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(
            at(Some(
                "git+https://github.com/acme/itoa#0123456789abcdef0123456789abcdef01234567"
            )),
            "git+https://github.com/acme/itoa@0123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(at(None), "NOASSERTION");
    }

    #[test]
    fn package_urls() {
        assert_eq!(crate_purl("itoa", "1.0.19"), "pkg:cargo/itoa@1.0.19");
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            image_purl("localhost:5000/hive/glibc", Some(digest)).unwrap(),
            format!("pkg:docker/hive/glibc@{digest}?repository_url=localhost:5000")
        );
        assert_eq!(
            image_purl("debian:12-slim", None).unwrap(),
            "pkg:docker/library/debian@12-slim"
        );
        assert_eq!(
            tag("localhost:5000/acme/api:1.4.2").as_deref(),
            Some("1.4.2")
        );
    }
}
