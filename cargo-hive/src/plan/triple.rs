//! Rust target triples and the platforms they build for: the default triple of each platform, and the check that a
//! triple the user chose (`targets = { "linux/arm64" = "…" }`) is one rustc knows and builds for that platform.

use super::platform::Platform;
use super::reference::Invalid;

/// The Linux targets rustc knows, the ones an image platform can use.
const KNOWN: &[&str] = &[
    "x86_64-unknown-linux-gnu",
    "x86_64-unknown-linux-musl",
    "x86_64-unknown-linux-gnux32",
    "x86_64-unknown-linux-ohos",
    "aarch64-unknown-linux-gnu",
    "aarch64-unknown-linux-musl",
    "aarch64-unknown-linux-ohos",
    "aarch64-unknown-linux-gnu_ilp32",
    "armv7-unknown-linux-gnueabihf",
    "armv7-unknown-linux-gnueabi",
    "armv7-unknown-linux-musleabihf",
    "armv7-unknown-linux-musleabi",
    "armv7-unknown-linux-ohos",
    "thumbv7neon-unknown-linux-gnueabihf",
    "thumbv7neon-unknown-linux-musleabihf",
    "arm-unknown-linux-gnueabi",
    "arm-unknown-linux-gnueabihf",
    "arm-unknown-linux-musleabi",
    "arm-unknown-linux-musleabihf",
    "armv5te-unknown-linux-gnueabi",
    "armv5te-unknown-linux-musleabi",
    "i686-unknown-linux-gnu",
    "i686-unknown-linux-musl",
    "i586-unknown-linux-gnu",
    "i586-unknown-linux-musl",
    "riscv64gc-unknown-linux-gnu",
    "riscv64gc-unknown-linux-musl",
    "powerpc64le-unknown-linux-gnu",
    "powerpc64le-unknown-linux-musl",
    "s390x-unknown-linux-gnu",
    "s390x-unknown-linux-musl",
    "loongarch64-unknown-linux-gnu",
    "loongarch64-unknown-linux-musl",
    "mips64el-unknown-linux-gnuabi64",
    "mips64el-unknown-linux-muslabi64",
];

/// A triple's architecture field → the OCI architecture and variant it builds for.
const ARCHES: &[(&str, &str, Option<&str>)] = &[
    ("x86_64", "amd64", None),
    ("aarch64", "arm64", None),
    ("armv7", "arm", Some("v7")),
    ("thumbv7neon", "arm", Some("v7")),
    ("arm", "arm", Some("v6")),
    ("armv5te", "arm", Some("v5")),
    ("i686", "386", None),
    ("i586", "386", None),
    ("riscv64gc", "riscv64", None),
    ("powerpc64le", "ppc64le", None),
    ("s390x", "s390x", None),
    ("loongarch64", "loong64", None),
    ("mips64el", "mips64le", None),
];

/// The triple a platform is built for unless `targets` says otherwise.
pub(crate) fn default_triple(platform: &Platform) -> Option<&'static str> {
    let triple = match (platform.architecture(), platform.variant()) {
        ("amd64", _) => "x86_64-unknown-linux-gnu",
        ("arm64", _) => "aarch64-unknown-linux-gnu",
        ("arm", None | Some("v7")) => "armv7-unknown-linux-gnueabihf",
        ("arm", Some("v6")) => "arm-unknown-linux-gnueabihf",
        ("arm", Some("v5")) => "armv5te-unknown-linux-gnueabi",
        ("386", _) => "i686-unknown-linux-gnu",
        ("riscv64", _) => "riscv64gc-unknown-linux-gnu",
        ("ppc64le", _) => "powerpc64le-unknown-linux-gnu",
        ("s390x", _) => "s390x-unknown-linux-gnu",
        ("loong64", _) => "loongarch64-unknown-linux-gnu",
        ("mips64le", _) => "mips64el-unknown-linux-gnuabi64",
        _ => return None,
    };
    Some(triple)
}

/// The platform a known triple builds for, as `os/arch[/variant]` text.
pub(crate) fn platform_of(triple: &str) -> Option<String> {
    let arch = triple.split('-').next()?;
    let (_, oci, variant) = ARCHES.iter().find(|(name, _, _)| *name == arch)?;
    Some(match variant {
        Some(variant) => format!("linux/{oci}/{variant}"),
        None => format!("linux/{oci}"),
    })
}

/// Checks that `triple` is a Linux target rustc knows and that it builds for `platform`.
pub(crate) fn check(triple: &str, platform: &Platform) -> Result<(), Invalid> {
    if !KNOWN.contains(&triple) {
        let help = match crate::config::did_you_mean(triple, KNOWN.iter().copied()) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!(
                "a Linux target of `rustc --print target-list`, such as `{}`",
                default_triple(platform).unwrap_or("x86_64-unknown-linux-gnu")
            ),
        };
        return Err(Invalid::new(
            format!("unknown target triple `{triple}`"),
            Some(help),
        ));
    }
    let arch = triple.split('-').next().unwrap_or_default();
    let (_, oci, variant) = ARCHES
        .iter()
        .find(|(name, _, _)| *name == arch)
        .expect("every known triple's architecture is mapped");
    let variant_fits = match (platform.variant(), variant) {
        (Some(wanted), Some(built)) => wanted == *built,
        _ => true,
    };
    if platform.architecture() == *oci && variant_fits {
        return Ok(());
    }
    let builds_for = platform_of(triple).unwrap_or_default();
    Err(Invalid::new(
        format!("target `{triple}` does not build for {platform}: it is a {builds_for} target"),
        Some(match default_triple(platform) {
            Some(default) => {
                format!("{platform} is built with `{default}` unless `targets` says otherwise")
            }
            None => format!("choose a target that builds for {platform}"),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    #[test]
    fn defaults_follow_the_issue_table_and_fit_their_platforms() {
        for (text, triple) in [
            ("linux/amd64", "x86_64-unknown-linux-gnu"),
            ("linux/arm64", "aarch64-unknown-linux-gnu"),
            ("linux/arm/v7", "armv7-unknown-linux-gnueabihf"),
            ("linux/386", "i686-unknown-linux-gnu"),
            ("linux/riscv64", "riscv64gc-unknown-linux-gnu"),
            ("linux/ppc64le", "powerpc64le-unknown-linux-gnu"),
            ("linux/s390x", "s390x-unknown-linux-gnu"),
        ] {
            assert_eq!(default_triple(&platform(text)), Some(triple));
            check(triple, &platform(text)).unwrap();
        }
        assert_eq!(default_triple(&platform("linux/arm/v8")), None);
        assert_eq!(
            platform_of("armv7-unknown-linux-musleabihf").unwrap(),
            "linux/arm/v7"
        );
        assert!(KNOWN.contains(&crate::cargo::host_default_triple()));
    }

    #[test]
    fn unknown_and_mismatched_triples_are_refused() {
        let amd64 = platform("linux/amd64");
        let err = check("x86_64-unknown-linux-gnux", &amd64).unwrap_err();
        assert_eq!(
            err.reason,
            "unknown target triple `x86_64-unknown-linux-gnux`"
        );
        assert_eq!(
            err.help.unwrap(),
            "did you mean `x86_64-unknown-linux-gnu`?"
        );
        let err = check("aarch64-unknown-linux-musl", &amd64).unwrap_err();
        assert_eq!(
            err.reason,
            "target `aarch64-unknown-linux-musl` does not build for linux/amd64: it is a linux/arm64 target"
        );
        check("x86_64-unknown-linux-musl", &amd64).unwrap();
        check("armv7-unknown-linux-musleabihf", &platform("linux/arm")).unwrap();
        assert!(check("armv7-unknown-linux-gnueabihf", &platform("linux/arm/v6")).is_err());
        assert!(check("x86_64-pc-windows-msvc", &amd64).is_err());
    }
}
