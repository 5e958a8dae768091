//! Which daemons keep attestations (SLSA provenance, SBOMs): they need BuildKit v0.11 or newer and an exporter that
//! writes them. Docker 20.10's BuildKit (v0.8) makes none, and Docker's `moby` exporter without the containerd
//! image store drops them. Asked for explicitly there, that is an error before anything is built; on by default,
//! one warning line, and the images are built without them.

use super::Destination;
use crate::buildkit::DaemonKind;

/// One kind of attestation the build would make: the flag that asks for it, and whether the user gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttestationAsk {
    /// What asks for it, as the user would write it (`--provenance=min`, `--sbom`).
    pub(crate) flag: String,
    /// The user asked (a flag or a manifest key); otherwise it is on by default.
    pub(crate) explicit: bool,
}

/// What the build does with the attestations it would make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The daemon keeps them (or none was asked for).
    Keep,
    /// None asked for explicitly and the daemon cannot keep them: built without them, said in this one line.
    Dropped {
        /// The warning.
        warning: String,
    },
}

/// Why this daemon cannot keep attestations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AttestationsUnsupported {
    /// Its BuildKit predates attestations.
    #[error(
        "{flag} needs BuildKit v0.11 or newer for attestations, but {daemon} has an older one: use Docker 25+ \
         with the containerd image store or a standalone buildkitd (--buildkit ADDR or BUILDKIT_HOST), or build \
         without {flag}"
    )]
    TooOld {
        /// The flag asked.
        flag: String,
        /// The daemon, in words.
        daemon: &'static str,
    },
    /// Its exporter drops them.
    #[error(
        "{flag} needs an exporter that keeps attestations, but Docker without the containerd image store \
         exports through its `moby` exporter, which drops them: turn on Docker's containerd image store \
         (\"features\": {{\"containerd-snapshotter\": true}} in daemon.json) or use a standalone buildkitd \
         (--buildkit ADDR or BUILDKIT_HOST), or build without {flag}"
    )]
    Dropped {
        /// The flag asked.
        flag: String,
    },
}

/// Whether the destinations on this daemon keep attestations: `info_rpc` is whether its BuildKit has the `Info`
/// rpc, which came with v0.11, the release that made attestations (a standalone buildkitd without it is older).
/// `flag` names what asks, for the error.
pub(crate) fn attestation_support(
    destinations: &[Destination],
    daemon: DaemonKind,
    info_rpc: bool,
    flag: &str,
) -> Result<(), AttestationsUnsupported> {
    let flag = flag.to_owned();
    match daemon {
        DaemonKind::DockerLegacy => {
            return Err(AttestationsUnsupported::TooOld {
                flag,
                daemon: "this Docker (20.10 or older)",
            });
        }
        DaemonKind::Buildkitd if !info_rpc => {
            return Err(AttestationsUnsupported::TooOld {
                flag,
                daemon: "this buildkitd",
            });
        }
        DaemonKind::Buildkitd | DaemonKind::DockerContainerd => return Ok(()),
        DaemonKind::DockerGraphDriver => {}
    }
    // Everything but `tar` goes through `moby` there (`local` is refused earlier); `tar` writes them as files.
    let through_moby = destinations.iter().any(|destination| match destination {
        Destination::Raw { kind, .. } => kind != "tar",
        Destination::OciArchive | Destination::Load | Destination::Push => true,
    });
    if through_moby {
        return Err(AttestationsUnsupported::Dropped { flag });
    }
    Ok(())
}

/// Settles the attestations asked for against the daemon, once, before any image is built: any asked for
/// explicitly that cannot be kept is an error; only defaults, and they are dropped with one warning line.
pub(crate) fn settle_attestations(
    asks: &[AttestationAsk],
    destinations: &[Destination],
    daemon: DaemonKind,
    info_rpc: bool,
) -> Result<Settled, AttestationsUnsupported> {
    let Some(first) = asks.first() else {
        return Ok(Settled::Keep);
    };
    let flag = asks.iter().find(|ask| ask.explicit).unwrap_or(first);
    match attestation_support(destinations, daemon, info_rpc, &flag.flag) {
        Ok(()) => Ok(Settled::Keep),
        Err(error) if flag.explicit => Err(error),
        Err(error) => {
            let flags: Vec<&str> = asks.iter().map(|ask| ask.flag.as_str()).collect();
            let why = match error {
                AttestationsUnsupported::TooOld { daemon, .. } => {
                    format!("{daemon} has a BuildKit older than v0.11")
                }
                AttestationsUnsupported::Dropped { .. } => {
                    "Docker without the containerd image store drops them".to_owned()
                }
            };
            Ok(Settled::Dropped {
                warning: format!(
                    "building without attestations ({}, on by default): {why}",
                    flags.join(", ")
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ask(flag: &str, explicit: bool) -> AttestationAsk {
        AttestationAsk {
            flag: flag.to_owned(),
            explicit,
        }
    }

    #[test]
    fn which_daemons_keep_attestations() {
        use DaemonKind::*;
        let push = [Destination::Push];
        let tar = [Destination::Raw {
            kind: "tar".into(),
            attrs: BTreeMap::new(),
            dest: Some("x.tar".into()),
        }];
        // (destinations, daemon, Info rpc, kept)
        let table: [(&[Destination], DaemonKind, bool, bool); 8] = [
            (&push, Buildkitd, true, true),
            (&push, DockerContainerd, true, true),
            (&[Destination::Load], DockerContainerd, true, true),
            (&push, Buildkitd, false, false),
            (&push, DockerLegacy, false, false),
            (&push, DockerGraphDriver, true, false),
            (&[Destination::Load], DockerGraphDriver, true, false),
            // `tar` writes them as files, on every daemon that has attestations at all.
            (&tar, DockerGraphDriver, true, true),
        ];
        for (destinations, daemon, info, kept) in table {
            let result = attestation_support(destinations, daemon, info, "--provenance=min");
            assert_eq!(
                result.is_ok(),
                kept,
                "{destinations:?} on {daemon:?}: {result:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_daemon_and_what_to_do() {
        let old = attestation_support(
            &[Destination::Push],
            DaemonKind::DockerLegacy,
            false,
            "--provenance=min",
        )
        .unwrap_err()
        .to_string();
        assert!(
            old.starts_with("--provenance=min needs BuildKit v0.11"),
            "{old}"
        );
        assert!(
            old.contains("Docker (20.10 or older)") && old.contains("standalone buildkitd"),
            "{old}"
        );
        let dropped = attestation_support(
            &[Destination::Push],
            DaemonKind::DockerGraphDriver,
            true,
            "--sbom",
        )
        .unwrap_err()
        .to_string();
        assert!(
            dropped.contains("`moby` exporter, which drops them"),
            "{dropped}"
        );
        assert!(
            dropped.contains("containerd image store") && dropped.ends_with("without --sbom"),
            "{dropped}"
        );
        assert!(!old.contains('\n') && !dropped.contains('\n'));
    }

    #[test]
    fn explicit_asks_fail_and_defaults_warn_once() {
        let push = [Destination::Push];
        let legacy = DaemonKind::DockerLegacy;
        assert_eq!(
            settle_attestations(&[], &push, legacy, false),
            Ok(Settled::Keep)
        );
        assert_eq!(
            settle_attestations(
                &[ask("--provenance=min", true)],
                &push,
                DaemonKind::Buildkitd,
                true
            ),
            Ok(Settled::Keep)
        );
        let explicit = settle_attestations(
            &[ask("--provenance=min", false), ask("--sbom", true)],
            &push,
            legacy,
            false,
        );
        assert!(
            matches!(&explicit, Err(AttestationsUnsupported::TooOld { flag, .. }) if flag == "--sbom"),
            "{explicit:?}"
        );
        let Ok(Settled::Dropped { warning }) =
            settle_attestations(&[ask("--provenance=min", false)], &push, legacy, false)
        else {
            panic!("a default is dropped")
        };
        assert_eq!(
            warning,
            "building without attestations (--provenance=min, on by default): this Docker (20.10 or older) has \
             a BuildKit older than v0.11"
        );
    }
}
