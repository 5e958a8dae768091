//! The plan as the engine uses it: the public plan (`hive_build::plan`, what `plan --format json` prints) and the
//! facts resolved once for it, typed, so nothing after the plan parses, walks or asks git again: each image's
//! platforms, its `hive:` chain, and the workspace's git facts.

use std::collections::BTreeMap;

use hive_build::plan::{Base, Plan, PlanImage};

use super::git::GitFacts;
use super::platform::Platform;
use crate::config::Place;

/// The plan and its resolved facts.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// What `plan --format json` prints.
    pub(crate) plan: Plan,
    /// The facts of every image of the plan, by name.
    pub(crate) image_facts: BTreeMap<String, ImageFacts>,
    /// The commit, branch and commit time, for tags, labels and SOURCE_DATE_EPOCH alike.
    pub(crate) git: GitFacts,
}

impl Resolved {
    /// The facts of an image of the plan.
    pub(crate) fn facts(&self, image: &str) -> &ImageFacts {
        self.image_facts
            .get(image)
            .expect("every image of the plan has its facts")
    }
}

/// What the engine knows of one image beyond its public plan.
#[derive(Debug, Clone)]
pub(crate) struct ImageFacts {
    /// Its platforms, in the plan's order.
    pub(crate) platforms: Vec<PlatformFacts>,
}

/// One platform of an image.
#[derive(Debug, Clone)]
pub(crate) struct PlatformFacts {
    /// The platform.
    pub(crate) platform: Platform,
    /// The Rust target triple its binary is built for.
    pub(crate) triple: String,
    /// Its `hive:` chain on this platform.
    pub(crate) chain: Chain,
    /// Where its `base` was set, for errors found later (a registry base without this platform).
    pub(crate) base_place: Place,
}

/// An image's `hive:` chain, walked once (cycles are rejected while walking it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    /// The images of the chain by name, bottom first: the image's `hive:` bases, then the image itself.
    pub(crate) images: Vec<String>,
    /// What the bottom image starts from: scratch, a registry image or a Dockerfile (whose `FROM hive-<name>`
    /// images are in its `PlanDockerfile::hive_images`), never `hive:`.
    pub(crate) root: Base,
}

impl ImageFacts {
    /// The facts of one of its platforms.
    pub(crate) fn on(&self, platform: &Platform) -> Option<&PlatformFacts> {
        self.platforms
            .iter()
            .find(|facts| facts.platform == *platform)
    }
}

impl Chain {
    /// Whether the image is built right on its root (no `hive:` base).
    pub(crate) fn is_direct(&self) -> bool {
        self.images.len() == 1
    }
}

/// Makes the image's own base, files, config and origins those of one of its platforms (the plan keeps the first
/// platform's there; the engine looks at one platform at a time). `false` when the image has no such platform.
pub(crate) fn take_platform_values(image: &mut PlanImage, platform: &str) -> bool {
    let Some(plan) = image
        .per_platform
        .iter()
        .find(|plan| plan.platform == platform)
    else {
        return false;
    };
    image.base = plan.base.clone();
    image.files = plan.files.clone();
    image.config = plan.config.clone();
    image.origins = plan.origins.clone();
    true
}

/// Where walking down an image's `hive:` bases ends.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Walk {
    /// At scratch or a registry image.
    Chain(Chain),
    /// At the image's own `hive:` base, which is not built for the platform.
    MissingPlatform {
        /// That base.
        below: String,
    },
    /// Back at the image: the names around the cycle, the image first and last.
    Cycle(Vec<String>),
    /// At a cycle the image is not part of, or at a base that did not resolve: reported for those images.
    Broken,
}

/// Walks down from `image` through its `hive:` bases on `platform`.
pub(super) fn walk(
    image: &PlanImage,
    platform: &str,
    by_name: &BTreeMap<&str, &PlanImage>,
) -> Walk {
    let mut down = vec![image.name.clone()];
    let mut current = image;
    loop {
        let on_platform = current
            .per_platform
            .iter()
            .find(|plan| plan.platform == platform);
        let Some(on_platform) = on_platform else {
            // Said at the image right above; deeper in the chain it is that image's own mistake.
            return match &down[..] {
                [_, below] => Walk::MissingPlatform {
                    below: below.clone(),
                },
                _ => Walk::Broken,
            };
        };
        let below = match &on_platform.base {
            Base::Hive { image: below } => below,
            root => {
                down.reverse();
                return Walk::Chain(Chain {
                    images: down,
                    root: root.clone(),
                });
            }
        };
        if *below == image.name {
            down.push(below.clone());
            return Walk::Cycle(down);
        }
        match by_name.get(below.as_str()) {
            Some(next) if !down.contains(below) => {
                down.push(below.clone());
                current = next;
            }
            _ => return Walk::Broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_build::plan::{Binary, ImageConfig, Origin, PackageInfo};

    fn image(name: &str, base: Base) -> PlanImage {
        PlanImage {
            name: name.into(),
            package: PackageInfo {
                name: "p".into(),
                version: "1.0.0".into(),
                manifest_path: "Cargo.toml".into(),
                description: None,
                license: None,
                repository: None,
                homepage: None,
            },
            declared_in: Origin::Default,
            variant: None,
            binary: Binary {
                target: name.into(),
                path: format!("/usr/local/bin/{name}"),
            },
            repository: name.into(),
            tags: vec!["latest".into()],
            references: vec![format!("{name}:latest")],
            aliases: false,
            platforms: vec!["linux/amd64".into()],
            base: base.clone(),
            files: Vec::new(),
            config: ImageConfig::default(),
            sbom: false,
            compression: Default::default(),
            compression_level: None,
            secrets: BTreeMap::new(),
            origins: BTreeMap::new(),
            selected: true,
            dockerfile: None,
            run: Vec::new(),
            per_platform: vec![hive_build::plan::PlatformPlan {
                platform: "linux/amd64".into(),
                target: "x86_64-unknown-linux-gnu".into(),
                base,
                files: Vec::new(),
                config: ImageConfig::default(),
                origins: BTreeMap::new(),
            }],
        }
    }

    fn hive(name: &str) -> Base {
        Base::Hive { image: name.into() }
    }

    #[test]
    fn chains_are_bottom_first_and_cycles_name_their_members() {
        let registry = Base::Image {
            reference: "docker.io/library/debian:12".into(),
        };
        let images = [
            image("app", hive("runtime")),
            image("runtime", hive("os")),
            image("os", registry.clone()),
            image("a", hive("b")),
            image("b", hive("a")),
            image("c", hive("a")),
            image("d", hive("gone")),
        ];
        let by_name = images.iter().map(|i| (i.name.as_str(), i)).collect();
        assert_eq!(
            walk(&images[0], "linux/amd64", &by_name),
            Walk::Chain(Chain {
                images: vec!["os".into(), "runtime".into(), "app".into()],
                root: registry.clone(),
            })
        );
        let Walk::Chain(os) = walk(&images[2], "linux/amd64", &by_name) else {
            panic!("a chain")
        };
        assert!(os.is_direct());
        assert_eq!(
            walk(&images[3], "linux/amd64", &by_name),
            Walk::Cycle(vec!["a".into(), "b".into(), "a".into()])
        );
        assert_eq!(walk(&images[5], "linux/amd64", &by_name), Walk::Broken);
        assert_eq!(walk(&images[6], "linux/amd64", &by_name), Walk::Broken);
    }
}
