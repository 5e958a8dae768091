//! Alias tags and the forward-only rule. `aliases = true` adds `<major>.<minor>` and `<major>` to a release's tags;
//! those and `latest` float: a release moves one only when no release already in the repository that the tag covers
//! is higher, so a 1.3.9 hotfix after 1.4.2 moves `1.3` but leaves `1` and `latest` on 1.4.2. Every other tag (the
//! version, a sha) is the release's own: created, or moved when it is there already.

use std::fmt;

use cargo_metadata::semver;

/// The alias tags `aliases = true` adds for a version: `1.2` and `1` for 1.2.3; none for a pre-release.
pub(crate) fn alias_tags(version: &semver::Version) -> Vec<String> {
    if !version.pre.is_empty() {
        return Vec::new();
    }
    vec![
        format!("{}.{}", version.major, version.minor),
        version.major.to_string(),
    ]
}

/// A release's tags: the image's rendered `tags`, then, with `aliases`, the alias tags of `version` that are not
/// among them already.
pub(crate) fn release_tags(
    tags: &[String],
    version: &semver::Version,
    aliases: bool,
) -> Vec<String> {
    let mut all = tags.to_vec();
    if aliases {
        for alias in alias_tags(version) {
            if !all.contains(&alias) {
                all.push(alias);
            }
        }
    }
    all
}

/// What a release does with one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TagAction {
    /// The repository has no such tag: it is pushed.
    Create,
    /// The repository has the tag: it is pushed again and now names this release's image.
    Move,
    /// The tag is not pushed.
    Leave(LeaveReason),
}

/// Why a release leaves a tag where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaveReason {
    /// A pre-release moves no floating tag.
    PreRelease,
    /// A release the tag covers is already in the repository and is higher than this one.
    HigherRelease {
        /// The existing tag that outranks us (the highest one).
        tag: String,
    },
}

/// One tag of a release and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TagDecision {
    /// The tag.
    pub(crate) tag: String,
    /// What the release does with it.
    pub(crate) action: TagAction,
}

impl TagDecision {
    /// Whether the release pushes this tag (creates or moves it).
    pub(crate) fn pushes(&self) -> bool {
        matches!(self.action, TagAction::Create | TagAction::Move)
    }
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaveReason::PreRelease => f.write_str("a pre-release moves no floating tag"),
            LeaveReason::HigherRelease { tag } => write!(f, "{tag} is a higher release"),
        }
    }
}

impl TagAction {
    /// What was done, in one word: `created`, `moved` or `left` (the release record's `action`).
    pub(crate) fn verb(&self) -> &'static str {
        match self {
            TagAction::Create => "created",
            TagAction::Move => "moved",
            TagAction::Leave(_) => "left",
        }
    }
}

impl fmt::Display for TagAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagAction::Leave(reason) => write!(f, "{} ({reason})", self.verb()),
            TagAction::Create | TagAction::Move => f.write_str(self.verb()),
        }
    }
}

impl fmt::Display for TagDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.tag, self.action)
    }
}

/// The releases a floating tag of a version covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Covers {
    /// `latest`: every release.
    All,
    /// `1`: 1.x.y.
    Major(u64),
    /// `1.3`: 1.3.y.
    Minor(u64, u64),
}

impl Covers {
    /// The range of `tag` if it floats for `version`: `latest`, or its `<major>` or `<major>.<minor>`.
    fn of(tag: &str, version: &semver::Version) -> Option<Covers> {
        let (major, minor) = (version.major, version.minor);
        if tag == "latest" {
            Some(Covers::All)
        } else if tag == major.to_string() {
            Some(Covers::Major(major))
        } else if tag == format!("{major}.{minor}") {
            Some(Covers::Minor(major, minor))
        } else {
            None
        }
    }

    fn contains(self, release: &semver::Version) -> bool {
        match self {
            Covers::All => true,
            Covers::Major(major) => release.major == major,
            Covers::Minor(major, minor) => release.major == major && release.minor == minor,
        }
    }
}

/// A registry tag read as a release: semver, optionally with a leading `v`, and not a pre-release. Other tags
/// (`latest`, `1.4`, a sha, `1.5.0-rc.1`) rank nothing.
fn as_release(tag: &str) -> Option<semver::Version> {
    let text = tag.strip_prefix('v').unwrap_or(tag);
    semver::Version::parse(text)
        .ok()
        .filter(|version| version.pre.is_empty())
}

/// Release order: build metadata does not rank.
fn rank(version: &semver::Version) -> (u64, u64, u64) {
    (version.major, version.minor, version.patch)
}

/// Decides every tag of one image's release: `tags` are the image's rendered tags (aliases already appended when
/// `aliases = true`), `existing` the repository's tags now.
pub(crate) fn decide(
    version: &semver::Version,
    tags: &[String],
    existing: &[String],
) -> Vec<TagDecision> {
    let releases: Vec<(semver::Version, &str)> = existing
        .iter()
        .filter_map(|tag| as_release(tag).map(|release| (release, tag.as_str())))
        .collect();
    let mut decisions: Vec<TagDecision> = Vec::with_capacity(tags.len());
    for tag in tags {
        if decisions.iter().any(|decision| &decision.tag == tag) {
            continue;
        }
        let present = existing.contains(tag);
        let action = match Covers::of(tag, version) {
            Some(_) if !version.pre.is_empty() => TagAction::Leave(LeaveReason::PreRelease),
            Some(covers) => match higher_release(&releases, covers, version) {
                Some(higher) => TagAction::Leave(LeaveReason::HigherRelease {
                    tag: higher.to_owned(),
                }),
                None if present => TagAction::Move,
                None => TagAction::Create,
            },
            None if present => TagAction::Move,
            None => TagAction::Create,
        };
        decisions.push(TagDecision {
            tag: tag.clone(),
            action,
        });
    }
    decisions
}

/// The highest release `covers` spans that is higher than `version` (ties between `1.4.2` and `v1.4.2` go to the
/// later name, so the answer does not depend on the registry's order).
fn higher_release<'t>(
    releases: &[(semver::Version, &'t str)],
    covers: Covers,
    version: &semver::Version,
) -> Option<&'t str> {
    releases
        .iter()
        .filter(|(release, _)| covers.contains(release) && rank(release) > rank(version))
        .max_by(|(a, a_tag), (b, b_tag)| rank(a).cmp(&rank(b)).then(a_tag.cmp(b_tag)))
        .map(|(_, tag)| *tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> semver::Version {
        semver::Version::parse(text).unwrap()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    /// The dry run's lines for releasing `release` with `tags` into a repository holding `existing`.
    fn lines(release: &str, tags: &[&str], existing: &[&str]) -> Vec<String> {
        decide(&version(release), &strings(tags), &strings(existing))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn alias_tags_are_minor_then_major_and_none_for_a_pre_release() {
        assert_eq!(alias_tags(&version("1.2.3")), ["1.2", "1"]);
        assert_eq!(alias_tags(&version("0.4.0")), ["0.4", "0"]);
        assert_eq!(alias_tags(&version("2.0.0+build.5")), ["2.0", "2"]);
        assert!(alias_tags(&version("1.3.0-rc.1")).is_empty());
    }

    #[test]
    fn release_tags_append_missing_aliases_only_when_asked() {
        let tags = strings(&["1.2.3", "latest", "1"]);
        assert_eq!(
            release_tags(&tags, &version("1.2.3"), true),
            ["1.2.3", "latest", "1", "1.2"]
        );
        assert_eq!(release_tags(&tags, &version("1.2.3"), false), tags);
        assert_eq!(
            release_tags(&tags, &version("1.3.0-rc.1"), true),
            tags,
            "a pre-release has no aliases"
        );
    }

    #[test]
    fn a_hotfix_after_a_higher_release_moves_only_its_own_minor() {
        let tags = release_tags(&strings(&["1.3.9", "latest"]), &version("1.3.9"), true);
        let existing = strings(&["1.4.2", "1.4", "1", "latest"]);
        let decisions = decide(&version("1.3.9"), &tags, &existing);
        assert_eq!(
            decisions,
            [
                TagDecision {
                    tag: "1.3.9".into(),
                    action: TagAction::Create
                },
                TagDecision {
                    tag: "latest".into(),
                    action: TagAction::Leave(LeaveReason::HigherRelease {
                        tag: "1.4.2".into()
                    })
                },
                TagDecision {
                    tag: "1.3".into(),
                    action: TagAction::Create
                },
                TagDecision {
                    tag: "1".into(),
                    action: TagAction::Leave(LeaveReason::HigherRelease {
                        tag: "1.4.2".into()
                    })
                },
            ]
        );
        let pushed: Vec<&str> = decisions
            .iter()
            .filter(|decision| decision.pushes())
            .map(|decision| decision.tag.as_str())
            .collect();
        assert_eq!(pushed, ["1.3.9", "1.3"]);
    }

    #[test]
    fn the_dry_run_reads_like_prose() {
        assert_eq!(
            lines(
                "1.3.9",
                &["1.3.9", "latest", "1.3", "1"],
                &["1.4.2", "1.3.8", "1.3", "1", "latest"]
            ),
            [
                "1.3.9: created",
                "latest: left (1.4.2 is a higher release)",
                "1.3: moved",
                "1: left (1.4.2 is a higher release)",
            ]
        );
        assert_eq!(
            lines("2.0.0-rc.1", &["2.0.0-rc.1", "latest"], &[]),
            [
                "2.0.0-rc.1: created",
                "latest: left (a pre-release moves no floating tag)"
            ]
        );
    }

    #[test]
    fn the_highest_higher_release_is_named() {
        assert_eq!(
            lines(
                "1.0.0",
                &["latest", "1"],
                &["1.2.0", "1.10.1", "1.9.0", "3.0.0"]
            ),
            [
                "latest: left (3.0.0 is a higher release)",
                "1: left (1.10.1 is a higher release)",
            ]
        );
    }

    #[test]
    fn re_releasing_the_same_version_moves_everything() {
        assert_eq!(
            lines(
                "1.4.2",
                &["1.4.2", "latest", "1.4", "1"],
                &["1.4.2", "1.4", "1", "latest"]
            ),
            ["1.4.2: moved", "latest: moved", "1.4: moved", "1: moved"]
        );
        // Build metadata does not make an existing release higher.
        assert_eq!(
            lines("1.4.2", &["latest"], &["1.4.2+other"]),
            ["latest: created"]
        );
    }

    #[test]
    fn v_prefixed_tags_are_releases_too() {
        assert_eq!(
            lines(
                "1.3.9",
                &["latest", "1.3"],
                &["v1.4.2", "v1.3.10", "latest"]
            ),
            [
                "latest: left (v1.4.2 is a higher release)",
                "1.3: left (v1.3.10 is a higher release)",
            ]
        );
        // Between `1.4.2` and `v1.4.2`, the answer does not depend on the registry's order.
        for existing in [&["1.4.2", "v1.4.2"], &["v1.4.2", "1.4.2"]] {
            assert_eq!(
                lines("1.3.9", &["latest"], existing),
                ["latest: left (v1.4.2 is a higher release)"]
            );
        }
    }

    #[test]
    fn pre_release_and_non_semver_tags_in_the_registry_rank_nothing() {
        assert_eq!(
            lines(
                "1.3.9",
                &["1.3.9", "latest", "1.3", "1"],
                &[
                    "1.4.0-rc.1",
                    "v2.0.0-beta",
                    "2",
                    "1.4",
                    "9.9",
                    "sha-0123456",
                    "latest",
                    "vv3.0.0"
                ]
            ),
            [
                "1.3.9: created",
                "latest: moved",
                "1.3: created",
                "1: created"
            ]
        );
    }

    #[test]
    fn an_empty_registry_creates_every_tag() {
        assert_eq!(
            lines("0.1.0", &["0.1.0", "latest", "0.1", "0"], &[]),
            [
                "0.1.0: created",
                "latest: created",
                "0.1: created",
                "0: created"
            ]
        );
    }

    #[test]
    fn other_tags_are_created_or_moved_whatever_the_releases() {
        // `1` is not a floating tag of 2.0.0: a tag the user asked for by name.
        assert_eq!(
            lines(
                "2.0.0",
                &["2.0.0", "sha-0123456", "1", "edge"],
                &["3.0.0", "edge", "1"]
            ),
            [
                "2.0.0: created",
                "sha-0123456: created",
                "1: moved",
                "edge: moved"
            ]
        );
        // The same tag twice is decided once.
        assert_eq!(
            lines("1.0.0", &["latest", "latest"], &[]),
            ["latest: created"]
        );
    }
}
