//! What `--load` can put into Docker for a multi-platform image, per daemon. Docker with the containerd image store
//! keeps whole indexes; every other store keeps one image per name, so only the host's platform is loaded there.
//!
//! Why, in BuildKit's and Docker's own code: Docker's graph-driver `moby` exporter refuses a result with more than
//! one ref ("exporting multiple references to image store is currently unsupported"), so the solve must hand it the
//! host's ref alone; BuildKit's `docker` exporter refuses any multi-platform result ("docker exporter does not
//! currently support exporting manifest lists", still so in 2026), so a standalone buildkitd's load goes through
//! an `oci` archive: Docker with the containerd store loads its index whole, and Docker without it (20.10 too)
//! loads the one image a `manifest.json` added to that archive names.

use crate::buildkit::DaemonKind;
use crate::plan::Platform;

/// The platforms of an image that `--load` puts into Docker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoadPlatforms {
    /// Every platform the image is built for (one platform, or Docker with the containerd image store).
    All,
    /// Only the host's platform, and the one line that tells the user so.
    HostOnly {
        /// The image's platform that Docker gets.
        platform: Platform,
        /// What to print, once per image.
        note: String,
    },
}

/// Why `--load` cannot load an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LoadError {
    /// The image lacks the host's platform, and the Docker that would get it keeps one platform per name.
    #[error(
        "image `{image}` is built for {platforms} only, but {store} loads only the host platform ({host}): use \
         --push or the OCI archive"
    )]
    NoHostPlatform {
        /// The image's name.
        image: String,
        /// Its platforms, comma-separated.
        platforms: String,
        /// The host's platform.
        host: String,
        /// Which store, in words.
        store: &'static str,
    },
}

/// What `--load` does with `image`, built for `platforms`, on this `daemon`. `docker_has_containerd_store` is about
/// the Docker that receives the load: BuildKit's own for a Docker daemon (which its kind already says), the one
/// behind `DOCKER_HOST` for a standalone buildkitd. A single-platform image is loaded as it is, whatever its
/// platform, as before multi-platform images.
pub(crate) fn load_platforms(
    daemon: DaemonKind,
    docker_has_containerd_store: bool,
    host: &Platform,
    image: &str,
    platforms: &[Platform],
) -> Result<LoadPlatforms, LoadError> {
    if platforms.len() <= 1 {
        return Ok(LoadPlatforms::All);
    }
    let store = match daemon {
        DaemonKind::DockerContainerd => return Ok(LoadPlatforms::All),
        DaemonKind::Buildkitd if docker_has_containerd_store => return Ok(LoadPlatforms::All),
        DaemonKind::Buildkitd => "Docker without the containerd image store",
        DaemonKind::DockerGraphDriver | DaemonKind::DockerLegacy => {
            "Docker without the containerd image store"
        }
    };
    let Some(platform) = host_platform(host, platforms) else {
        return Err(LoadError::NoHostPlatform {
            image: image.to_owned(),
            platforms: list(platforms),
            host: host.to_string(),
            store,
        });
    };
    let note = format!(
        "image `{image}`: {store} loads one platform: loading {platform} only (use --push or the OCI archive for \
         all platforms)"
    );
    Ok(LoadPlatforms::HostOnly {
        platform: platform.clone(),
        note,
    })
}

/// The image's platform the host runs: same OS and architecture. The host's variant is unknown (`Platform::host`
/// has none), so any variant of the host's architecture is taken, the first one listed.
fn host_platform<'a>(host: &Platform, platforms: &'a [Platform]) -> Option<&'a Platform> {
    platforms.iter().find(|platform| {
        platform.os() == host.os()
            && platform.architecture() == host.architecture()
            && (host.variant().is_none() || platform.variant() == host.variant())
    })
}

fn list(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platforms(list: &[&str]) -> Vec<Platform> {
        list.iter()
            .map(|text| Platform::parse(text).unwrap())
            .collect()
    }

    #[test]
    fn the_load_policy_per_daemon() {
        use DaemonKind::*;
        let amd64 = Platform::parse("linux/amd64").unwrap();
        let both = platforms(&["linux/arm64", "linux/amd64"]);
        // (daemon, the receiving Docker has the containerd store, platforms, loads them all)
        let table: [(DaemonKind, bool, &[Platform], bool); 10] = [
            (DockerContainerd, true, &both, true),
            (Buildkitd, true, &both, true),
            (Buildkitd, false, &both, false),
            (DockerGraphDriver, false, &both, false),
            (DockerLegacy, false, &both, false),
            // One platform: as before, whichever daemon and whichever platform.
            (DockerLegacy, false, &both[..1], true),
            (DockerGraphDriver, false, &both[1..], true),
            (Buildkitd, false, &both[..1], true),
            (DockerContainerd, true, &both[..1], true),
            (Buildkitd, false, &[], true),
        ];
        for (daemon, containerd, list, all) in table {
            let case = format!("{daemon:?}, containerd store {containerd}, {list:?}");
            match load_platforms(daemon, containerd, &amd64, "api", list) {
                Ok(LoadPlatforms::All) => assert!(all, "{case}: all"),
                Ok(LoadPlatforms::HostOnly { platform, .. }) => {
                    assert!(!all, "{case}: host only");
                    assert_eq!(platform, amd64, "{case}");
                }
                Err(err) => panic!("{case}: {err}"),
            }
        }
    }

    #[test]
    fn host_only_says_so_in_one_line() {
        let amd64 = Platform::parse("linux/amd64").unwrap();
        let both = platforms(&["linux/amd64", "linux/arm64"]);
        let Ok(LoadPlatforms::HostOnly { note, .. }) =
            load_platforms(DaemonKind::DockerLegacy, false, &amd64, "api", &both)
        else {
            panic!("expected HostOnly")
        };
        assert_eq!(
            note,
            "image `api`: Docker without the containerd image store loads one platform: loading linux/amd64 \
             only (use --push or the OCI archive for all platforms)"
        );
        assert!(!note.contains('\n'));
    }

    #[test]
    fn an_image_without_the_host_platform_cannot_be_loaded_into_one_platform_stores() {
        let amd64 = Platform::parse("linux/amd64").unwrap();
        let arm = platforms(&["linux/arm64", "linux/arm/v7"]);
        let err =
            load_platforms(DaemonKind::DockerGraphDriver, false, &amd64, "api", &arm).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image `api` is built for linux/arm64, linux/arm/v7 only, but Docker without the containerd image \
             store loads only the host platform (linux/amd64): use --push or the OCI archive"
        );
        // Docker with the containerd store takes them all, runnable or not.
        assert_eq!(
            load_platforms(DaemonKind::DockerContainerd, true, &amd64, "api", &arm),
            Ok(LoadPlatforms::All)
        );
    }

    #[test]
    fn any_variant_of_the_host_architecture_is_the_host_platform() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let list = platforms(&["linux/amd64", "linux/arm64/v8"]);
        let result = load_platforms(DaemonKind::Buildkitd, false, &arm64, "api", &list);
        assert!(
            matches!(&result, Ok(LoadPlatforms::HostOnly { platform, .. }) if platform.to_string() == "linux/arm64/v8"),
            "{result:?}"
        );
    }
}
