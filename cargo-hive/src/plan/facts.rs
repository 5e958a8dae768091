//! The plan as the engine uses it: the public plan (`hive_build::plan`, what `plan --format json` prints) and the
//! facts resolved once for it, typed, so nothing after the plan parses, walks or asks git again: each image's
//! platforms, its `hive:` chain, and the workspace's git facts.

use std::collections::BTreeMap;

use hive_build::plan::{Base, Plan, PlanImage};

use super::git::GitFacts;
use super::platform::Platform;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageFacts {
    /// Its platforms, in the plan's order.
    pub(crate) platforms: Vec<Platform>,
    /// Its `hive:` chain.
    pub(crate) chain: Chain,
}

/// An image's `hive:` chain, walked once (cycles are rejected while walking it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    /// The images of the chain by name, bottom first: the image's `hive:` bases, then the image itself.
    pub(crate) images: Vec<String>,
    /// What the bottom image starts from: scratch or a registry image, never `hive:`.
    pub(crate) root: Base,
}

impl ImageFacts {
    /// The platform built: the first (this version builds one per image).
    pub(crate) fn platform(&self) -> &Platform {
        self.platforms
            .first()
            .expect("a resolved image has at least one platform")
    }
}

impl Chain {
    /// Whether the image is built right on its root (no `hive:` base).
    pub(crate) fn is_direct(&self) -> bool {
        self.images.len() == 1
    }
}

/// Where walking down an image's `hive:` bases ends.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Walk {
    /// At scratch or a registry image.
    Chain(Chain),
    /// Back at the image: the names around the cycle, the image first and last.
    Cycle(Vec<String>),
    /// At a cycle the image is not part of, or at a base that did not resolve: reported for those images.
    Broken,
}

/// Walks down from `image` through its `hive:` bases.
pub(super) fn walk(image: &PlanImage, by_name: &BTreeMap<&str, &PlanImage>) -> Walk {
    let mut down = vec![image.name.clone()];
    let mut current = image;
    loop {
        let below = match &current.base {
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
            binary: Binary {
                target: name.into(),
                path: format!("/usr/local/bin/{name}"),
            },
            repository: name.into(),
            tags: vec!["latest".into()],
            references: vec![format!("{name}:latest")],
            platforms: vec!["linux/amd64".into()],
            base,
            files: Vec::new(),
            config: ImageConfig::default(),
            origins: BTreeMap::new(),
            selected: true,
            per_platform: Vec::new(),
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
            walk(&images[0], &by_name),
            Walk::Chain(Chain {
                images: vec!["os".into(), "runtime".into(), "app".into()],
                root: registry.clone(),
            })
        );
        let Walk::Chain(os) = walk(&images[2], &by_name) else {
            panic!("a chain")
        };
        assert!(os.is_direct());
        assert_eq!(
            walk(&images[3], &by_name),
            Walk::Cycle(vec!["a".into(), "b".into(), "a".into()])
        );
        assert_eq!(walk(&images[5], &by_name), Walk::Broken);
        assert_eq!(walk(&images[6], &by_name), Walk::Broken);
    }
}
