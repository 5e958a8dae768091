//! Target platforms, `os/arch[/variant]` with the values BuildKit knows: parsed once, where definitions are
//! checked, and carried typed from there on. The JSON plan keeps them as the text the user wrote.

use std::fmt;

use super::reference::Invalid;

/// A target platform, checked: a known OS, architecture and variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

const OSES: &[&str] = &["linux"];
/// Architectures and their variants, as in the OCI image index spec and BuildKit.
const ARCHES: &[(&str, &[&str])] = &[
    ("amd64", &["v1", "v2", "v3", "v4"]),
    ("arm64", &["v8"]),
    ("arm", &["v5", "v6", "v7", "v8"]),
    ("386", &[]),
    ("ppc64le", &[]),
    ("s390x", &[]),
    ("riscv64", &[]),
    ("mips64le", &[]),
    ("loong64", &[]),
];
/// Names people write for an architecture, and the OCI name for it.
const ALIASES: &[(&str, &str)] = &[
    ("x86_64", "amd64"),
    ("x86-64", "amd64"),
    ("aarch64", "arm64"),
    ("armhf", "arm"),
    ("i386", "386"),
    ("i686", "386"),
];

impl Platform {
    /// Parses and checks `os/arch[/variant]`.
    pub(crate) fn parse(text: &str) -> Result<Platform, Invalid> {
        let parts: Vec<&str> = text.split('/').collect();
        let (os, arch, variant) = match parts[..] {
            [os, arch] => (os, arch, None),
            [os, arch, variant] => (os, arch, Some(variant)),
            _ => {
                return Err(Invalid::new(
                    "a platform is `os/arch` or `os/arch/variant`",
                    Some("for example `linux/amd64` or `linux/arm/v7`".to_owned()),
                ));
            }
        };
        if !OSES.contains(&os) {
            return Err(Invalid::new(
                format!("unsupported operating system `{os}`"),
                Some("cargo-hive builds Linux images: use `linux/<arch>`".to_owned()),
            ));
        }
        let Some((_, variants)) = ARCHES.iter().find(|(name, _)| *name == arch) else {
            return Err(unknown_architecture(os, arch));
        };
        if let Some(variant) = variant
            && !variants.contains(&variant)
        {
            let help = if variants.is_empty() {
                format!("`{arch}` has no variants: write `{os}/{arch}`")
            } else {
                format!("variants of `{arch}`: {}", variants.join(", "))
            };
            return Err(Invalid::new(
                format!("unknown variant `{variant}` of `{arch}`"),
                Some(help),
            ));
        }
        Ok(Platform {
            os: os.to_owned(),
            architecture: arch.to_owned(),
            variant: variant.map(str::to_owned),
        })
    }

    /// `linux/<the architecture of this machine>`.
    pub(crate) fn host() -> Platform {
        Platform {
            os: "linux".to_owned(),
            architecture: host_architecture().to_owned(),
            variant: None,
        }
    }

    /// The operating system (`linux`).
    pub(crate) fn os(&self) -> &str {
        &self.os
    }

    /// The architecture in OCI terms (`amd64`, `arm64`, …).
    pub(crate) fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The variant (`v7`, `v8`, …), if one was given.
    pub(crate) fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// `<os>-<arch>[-<variant>]`: the platform as one path segment or name suffix (`linux-arm-v7`).
    pub(crate) fn path_segment(&self) -> String {
        self.to_string().replace('/', "-")
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}

fn unknown_architecture(os: &str, arch: &str) -> Invalid {
    let help = match ALIASES.iter().find(|(alias, _)| *alias == arch) {
        Some((_, oci)) => format!("OCI calls this architecture `{oci}`: write `{os}/{oci}`"),
        None => format!(
            "known architectures: {}",
            ARCHES
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Invalid::new(format!("unknown architecture `{arch}`"), Some(help))
}

/// The architecture of this machine in OCI terms.
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_same_text() {
        for ok in [
            "linux/amd64",
            "linux/arm64",
            "linux/arm64/v8",
            "linux/arm/v7",
            "linux/riscv64",
        ] {
            assert_eq!(Platform::parse(ok).unwrap().to_string(), ok);
        }
        let arm = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(
            (arm.os(), arm.architecture(), arm.variant()),
            ("linux", "arm", Some("v7"))
        );
        assert_eq!(Platform::parse("linux/amd64").unwrap().variant(), None);
        assert_eq!(
            Platform::host().to_string(),
            format!("linux/{}", host_architecture())
        );
    }

    #[test]
    fn rejects_what_buildkit_does_not_know() {
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap_err().help.unwrap(),
            "OCI calls this architecture `amd64`: write `linux/amd64`"
        );
        for bad in [
            "windows/amd64",
            "linux",
            "linux/386/v7",
            "linux/arm/v9",
            "linux/amd64/v3/x",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }
}
