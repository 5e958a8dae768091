//! Dockerfile images (`dockerfile`, `context`, `target`, `build-args`): the Dockerfile and the context checked on
//! disk, the keys a Dockerfile replaces refused where the image sets them itself, and the `FROM` lines (and
//! `COPY --from=`, which BuildKit resolves the same way) scanned for `hive-<name>`, the images of the workspace the
//! Dockerfile is built on (edges of the image graph).
//!
//! The scan reads only what the graph needs: no variable is expanded (`FROM $BASE` is left alone) and a `# syntax=`
//! line is kept as the user wrote it (the daemon may pull a frontend for it; that is the user's choice).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hive_build::plan::{Base, Origin, PlanDockerfile, PlanImage};

use super::facts::ImageFacts;
use super::platform::Platform;
use crate::config::{
    ConfigError, Definitions, Diagnostics, Layer, Package, Place, check_image_name, did_you_mean,
    file_kind,
};

/// The prefix a `FROM` gives an image of the workspace: `FROM hive-api`.
pub(crate) const HIVE_PREFIX: &str = "hive-";

/// One `FROM` line of a Dockerfile, or a `COPY --from=<image>` (which BuildKit resolves the same way: an earlier
/// stage, else a named context, else a registry image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FromLine {
    /// The image (or earlier stage) it starts from, as written.
    pub(crate) image: String,
    /// The stage's name (`AS name`), lowercased as BuildKit does.
    pub(crate) stage: Option<String>,
    /// Whether it is a `COPY --from`, not a `FROM` (it starts no stage).
    pub(crate) copy_from: bool,
}

/// The `FROM` lines (and `COPY --from=`s) of a Dockerfile, in order. Comments and empty lines are skipped, continuation lines joined
/// (with the escape character of a leading `# escape=` directive), flags such as `--platform=…` skipped.
pub(crate) fn scan(text: &str) -> Vec<FromLine> {
    let escape = escape_char(text);
    let mut froms = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        // Comment lines are dropped even inside a continued instruction, as BuildKit's parser does.
        if trimmed.starts_with('#') || (trimmed.is_empty() && !logical.is_empty()) {
            continue;
        }
        let trimmed_end = line.trim_end();
        match trimmed_end.strip_suffix(escape) {
            Some(continued) => {
                logical.push_str(continued);
                logical.push(' ');
            }
            None => {
                logical.push_str(trimmed_end);
                froms.extend(from_instruction(&logical));
                logical.clear();
            }
        }
    }
    froms.extend(from_instruction(&logical));
    froms
}

/// The escape character: `\`, unless a parser directive at the top says otherwise.
fn escape_char(text: &str) -> char {
    for line in text.lines() {
        let Some(directive) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = directive.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        if key == "escape" && value.trim() == "`" {
            return '`';
        }
        if !matches!(key.as_str(), "escape" | "syntax" | "check") {
            break;
        }
    }
    '\\'
}

/// `FROM [--flag=…] image [AS name]` or `COPY --from=image …`, when the logical line is one.
fn from_instruction(line: &str) -> Option<FromLine> {
    let mut words = line.split_whitespace();
    let instruction = words.next()?;
    if instruction.eq_ignore_ascii_case("COPY") {
        let image = (words.take_while(|word| word.starts_with("--")))
            .find_map(|flag| flag.strip_prefix("--from="))?;
        return Some(FromLine {
            image: image.to_owned(),
            stage: None,
            copy_from: true,
        });
    }
    if !instruction.eq_ignore_ascii_case("FROM") {
        return None;
    }
    let mut words = words.skip_while(|word| word.starts_with("--"));
    let image = words.next()?.to_owned();
    let stage = match (words.next(), words.next()) {
        (Some(as_), Some(name)) if as_.eq_ignore_ascii_case("AS") => {
            Some(name.to_ascii_lowercase())
        }
        _ => None,
    };
    Some(FromLine {
        image,
        stage,
        copy_from: false,
    })
}

/// The workspace image a `FROM` names: `hive-<name>` with `<name>` a plain image name (no tag, digest or path),
/// unless an earlier stage has that name. Variant names (`api@debug`) cannot be written in a `FROM`.
pub(crate) fn hive_references(froms: &[FromLine]) -> BTreeSet<String> {
    let mut stages = BTreeSet::new();
    let mut names = BTreeSet::new();
    for from in froms {
        let earlier_stage = stages.contains(&from.image.to_ascii_lowercase());
        if let Some(name) = from.image.strip_prefix(HIVE_PREFIX)
            && !earlier_stage
            && check_image_name(name).is_ok()
        {
            names.insert(name.to_owned());
        }
        if let Some(stage) = &from.stage {
            stages.insert(stage.clone());
        }
    }
    names
}

/// The keys a Dockerfile replaces, with what to do instead: an error where the image (or variant) sets them itself.
const REPLACED: &[(&str, &str, &str)] = &[
    (
        "base",
        "dockerfile-and-base",
        "the Dockerfile's FROM is the base",
    ),
    (
        "run",
        "dockerfile-and-run",
        "put the step in the Dockerfile",
    ),
    ("files", "dockerfile-and-files", "COPY it in the Dockerfile"),
    (
        "entrypoint",
        "dockerfile-and-config",
        "set it in the Dockerfile",
    ),
    ("cmd", "dockerfile-and-config", "set it in the Dockerfile"),
    ("env", "dockerfile-and-config", "set it in the Dockerfile"),
    ("user", "dockerfile-and-config", "set it in the Dockerfile"),
    (
        "workdir",
        "dockerfile-and-config",
        "set it in the Dockerfile",
    ),
    (
        "expose",
        "dockerfile-and-config",
        "set it in the Dockerfile",
    ),
];

/// Whether a layer belongs to the image itself (its own table, its variant's table, or its build script's
/// declarations) rather than being inherited from the workspace, the package or, for a variant, its image.
fn own_layer(layer: &Layer, declared: &Place) -> bool {
    match (&layer.whole, declared) {
        (Place::BuildScript { .. }, _) => true,
        (
            Place::Manifest { file, span, .. },
            Place::Manifest {
                file: at,
                span: at_span,
                ..
            },
        ) => std::sync::Arc::ptr_eq(file, at) && span == at_span,
        _ => false,
    }
}

/// Reports every key a Dockerfile replaces that the image's own layers set.
pub(super) fn refuse_replaced(
    name: &str,
    layers: &[Layer],
    declared: &Place,
    diags: &mut Diagnostics,
) {
    for layer in layers.iter().filter(|layer| own_layer(layer, declared)) {
        let def = &layer.def;
        let set = [
            def.base.is_some(),
            def.run.is_some(),
            def.files.is_some(),
            def.entrypoint.is_some(),
            def.cmd.is_some(),
            !def.env.is_empty(),
            def.user.is_some(),
            def.workdir.is_some(),
            def.expose.is_some(),
        ];
        for ((key, code, help), set) in REPLACED.iter().zip(set) {
            if set {
                diags.push(
                    ConfigError::new(
                        code,
                        &layer.place(key),
                        format!("image `{name}` is built from a Dockerfile and cannot set `{key}`"),
                        "not used with `dockerfile`",
                    )
                    .help(*help),
                );
            }
        }
    }
}

/// What a Dockerfile image is resolved from.
pub(super) struct Input<'a> {
    pub(super) name: &'a str,
    pub(super) package: &'a Package,
    pub(super) root: &'a Path,
    /// The images of the workspace, for `FROM hive-<name>`.
    pub(super) names: &'a BTreeSet<&'a str>,
    /// `dockerfile` as written and the layer that set it.
    pub(super) dockerfile: (&'a str, &'a Layer),
    pub(super) context: Option<(&'a str, &'a Layer)>,
    pub(super) target: Option<(&'a str, &'a Layer)>,
    pub(super) build_args: BTreeMap<&'a str, (&'a str, &'a Layer)>,
}

/// Resolves a Dockerfile image's keys; mistakes go to `diags`, origins to `origins`.
pub(super) fn resolve(
    input: &Input<'_>,
    origins: &mut BTreeMap<String, Origin>,
    diags: &mut Diagnostics,
) -> PlanDockerfile {
    let canonical_root = (input.root.canonicalize()).unwrap_or_else(|_| input.root.to_path_buf());
    let (text, layer) = input.dockerfile;
    let place = layer.place("dockerfile");
    origins.insert("dockerfile".into(), place.origin());
    let dockerfile = input.package.dir().join(text);
    let froms = match check_path(&dockerfile, Want::File, &canonical_root) {
        Ok(()) => read_froms(&dockerfile, &place, diags),
        Err(mistake) => {
            diags.push(mistake.error(input, "dockerfile", text, &place));
            None
        }
    };
    let context = match input.context {
        Some((text, layer)) => {
            let place = layer.place("context");
            origins.insert("context".into(), place.origin());
            let dir = input.package.dir().join(text);
            if let Err(mistake) = check_path(&dir, Want::Dir, &canonical_root) {
                diags.push(mistake.error(input, "context", text, &place));
            }
            dir
        }
        None => {
            origins.insert("context".into(), Origin::Default);
            input.package.dir().to_path_buf()
        }
    };
    let froms = froms.unwrap_or_default();
    let target = input.target.map(|(target, layer)| {
        let place = layer.place("target");
        // Under `stage`: `target` is the origin of each platform's Rust target.
        origins.insert("stage".into(), place.origin());
        check_target(target, &froms, &place, diags);
        target.to_owned()
    });
    let hive_images = hive_references(&froms);
    for image in &hive_images {
        if let Some(error) = unknown_image(input, image, &place) {
            diags.push(error);
        }
    }
    PlanDockerfile {
        dockerfile: super::assemble::normalize(&dockerfile)
            .display()
            .to_string(),
        context: super::assemble::normalize(&context).display().to_string(),
        target,
        build_args: build_args(input, origins, diags),
        hive_images: hive_images.into_iter().collect(),
    }
}

/// The Dockerfile's `FROM` lines; `None` (reported) when it cannot be read.
fn read_froms(path: &Path, place: &Place, diags: &mut Diagnostics) -> Option<Vec<FromLine>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(scan(&text)),
        Err(error) => {
            diags.push(
                ConfigError::new(
                    "unreadable-dockerfile",
                    place,
                    format!(
                        "could not read the Dockerfile `{}`: {error}",
                        path.display()
                    ),
                    "unreadable",
                )
                .help("the Dockerfile is read to find the images of the workspace it is built on"),
            );
            None
        }
    }
}

/// `target` must name a stage (`FROM … AS <target>`).
fn check_target(target: &str, froms: &[FromLine], place: &Place, diags: &mut Diagnostics) {
    let stages: Vec<&str> = froms
        .iter()
        .filter_map(|from| from.stage.as_deref())
        .collect();
    let unread = !froms.iter().any(|from| !from.copy_from);
    if unread || stages.contains(&target.to_ascii_lowercase().as_str()) {
        return;
    }
    let error = ConfigError::new(
        "unknown-stage",
        place,
        format!("the Dockerfile has no stage `{target}`"),
        "no such stage",
    );
    diags.push(
        match (
            did_you_mean(target, stages.iter().copied()),
            stages.is_empty(),
        ) {
            (Some(close), _) => error.help(format!("did you mean `{close}`?")),
            (None, true) => {
                error.help("name a stage with `FROM <image> AS <name>` to build it as `target`")
            }
            (None, false) => error.help(format!("its stages: {}", stages.join(", "))),
        },
    );
}

/// A `FROM hive-<name>` that names no other image of the workspace.
fn unknown_image(input: &Input<'_>, image: &str, place: &Place) -> Option<ConfigError> {
    let reason = if image == input.name {
        "an image cannot be built on itself"
    } else if input.names.contains(image) {
        return None;
    } else {
        "no such image"
    };
    let error = ConfigError::new(
        "unknown-base-image",
        place,
        format!(
            "the Dockerfile's `FROM {HIVE_PREFIX}{image}` names no other image of the workspace"
        ),
        reason,
    );
    let others: Vec<&str> = (input.names.iter().copied())
        .filter(|other| *other != input.name && !other.contains('@'))
        .collect();
    Some(
        match (
            did_you_mean(image, others.iter().copied()),
            others.is_empty(),
        ) {
            (Some(close), _) => error.help(format!("did you mean `FROM {HIVE_PREFIX}{close}`?")),
            (None, true) => error.help("the workspace has no other image"),
            (None, false) => error.help(format!("the workspace's images: {}", others.join(", "))),
        },
    )
}

/// `build-args` merged across layers, each name checked and its origin recorded.
fn build_args(
    input: &Input<'_>,
    origins: &mut BTreeMap<String, Origin>,
    diags: &mut Diagnostics,
) -> BTreeMap<String, String> {
    let mut args = BTreeMap::new();
    for (key, (value, layer)) in &input.build_args {
        let path = format!("build-args.{key}");
        origins.insert(path.clone(), layer.place(&path).origin());
        if key.is_empty() || key.contains(['=', '\0']) || key.contains(char::is_whitespace) {
            diags.push(
                ConfigError::new(
                    "invalid-build-arg",
                    &layer.place(&format!("{path}#key")),
                    format!("invalid build argument name `{key}`"),
                    "invalid name",
                )
                .help(
                    "a build argument's name is the name of an `ARG`: not empty, no `=` or spaces",
                ),
            );
        }
        args.insert((*key).to_owned(), (*value).to_owned());
    }
    args
}

/// What a path must be.
#[derive(Debug, Clone, Copy)]
enum Want {
    File,
    Dir,
}

/// Why a path is not what it must be.
#[derive(Debug)]
enum PathMistake {
    Missing,
    Outside,
    Kind(&'static str),
}

/// The path exists inside the workspace (symlinks followed) and is a regular file or a directory as wanted.
fn check_path(path: &Path, want: Want, canonical_root: &Path) -> Result<(), PathMistake> {
    let canonical: PathBuf = path.canonicalize().map_err(|_| PathMistake::Missing)?;
    if !canonical.starts_with(canonical_root) {
        return Err(PathMistake::Outside);
    }
    let file_type = std::fs::metadata(&canonical)
        .map_err(|_| PathMistake::Missing)?
        .file_type();
    match want {
        Want::File if file_type.is_file() => Ok(()),
        Want::Dir if file_type.is_dir() => Ok(()),
        _ => Err(PathMistake::Kind(file_kind(file_type))),
    }
}

impl PathMistake {
    /// The diagnostic for `key = "text"`.
    fn error(self, input: &Input<'_>, key: &str, text: &str, place: &Place) -> ConfigError {
        let (what, help_what) = match key {
            "dockerfile" => ("a file", "the Dockerfile"),
            _ => ("a directory", "the build context"),
        };
        match self {
            PathMistake::Missing => ConfigError::new(
                "missing-file",
                place,
                format!(
                    "`{key} = \"{text}\"` does not exist in package `{}`",
                    input.package.name
                ),
                "not found",
            )
            .help(format!(
                "`{key}` is relative to the package directory, `{}`",
                package_dir(input)
            )),
            PathMistake::Outside => ConfigError::new(
                "file-outside-workspace",
                place,
                format!("`{key} = \"{text}\"` is outside the workspace"),
                "outside",
            )
            .help(format!(
                "{help_what} is sent to BuildKit from the workspace; move it into it"
            )),
            PathMistake::Kind(kind) => ConfigError::new(
                "wrong-file-type",
                place,
                format!("`{key} = \"{text}\"` is {kind}, not {what}"),
                format!("not {what}"),
            )
            .help(format!("`{key}` names {what}")),
        }
    }
}

/// The package directory relative to the workspace root, `.` for the root package.
fn package_dir(input: &Input<'_>) -> String {
    match input.package.dir().strip_prefix(input.root) {
        Ok(dir) if dir.as_os_str().is_empty() => ".".to_owned(),
        Ok(dir) => dir.display().to_string(),
        Err(_) => input.package.dir().display().to_string(),
    }
}

/// The images an image is built on: its `hive:` base and its Dockerfile's `FROM hive-<name>` images.
fn below(image: &PlanImage) -> impl Iterator<Item = &str> {
    let base = match &image.base {
        Base::Hive { image } => Some(image.as_str()),
        _ => None,
    };
    let from_lines = image.dockerfile.iter().flat_map(|d| d.hive_images.iter());
    base.into_iter().chain(from_lines.map(String::as_str))
}

/// Where the `dockerfile` of an image was set (the highest layer setting it), else where the image was declared.
fn dockerfile_place(definitions: &Definitions, name: &str) -> Option<Place> {
    let definition = definitions.images.iter().find(|d| d.name == name)?;
    let place = (definition.layers.iter().rev())
        .find(|layer| layer.def.dockerfile.is_some())
        .map_or(definition.declared.clone(), |layer| {
            layer.place("dockerfile")
        });
    Some(place)
}

/// Checks the graph edges that Dockerfiles add: every cycle through a `FROM hive-<name>` (the `hive:` walk finds
/// the others), and every platform a Dockerfile image is built for present in the images its `FROM`s name.
pub(super) fn check_graph(
    images: &[PlanImage],
    definitions: &Definitions,
    diags: &mut Diagnostics,
) {
    let by_name: BTreeMap<&str, &PlanImage> = (images.iter())
        .map(|image| (image.name.as_str(), image))
        .collect();
    let mut reported = BTreeSet::new();
    for image in images {
        let Some(dockerfile) = &image.dockerfile else {
            continue;
        };
        let Some(place) = dockerfile_place(definitions, &image.name) else {
            continue;
        };
        for from in &dockerfile.hive_images {
            let Some(below_image) = by_name.get(from.as_str()) else {
                continue;
            };
            missing_platforms(image, below_image, &place, diags);
            let Some(mut cycle) = path(&by_name, from, &image.name) else {
                continue;
            };
            cycle.insert(0, image.name.clone());
            if cycle.iter().any(|name| reported.contains(name)) {
                continue;
            }
            reported.extend(cycle.iter().cloned());
            diags.push(cycle_error(&by_name, &cycle, &place));
        }
    }
}

/// A platform the Dockerfile image is built for that an image it names in `FROM` lacks.
fn missing_platforms(image: &PlanImage, below: &PlanImage, place: &Place, diags: &mut Diagnostics) {
    let missing = (image.platforms.iter()).find(|platform| !below.platforms.contains(platform));
    if let Some(platform) = missing {
        let has = below.platforms.join(", ");
        diags.push(
            ConfigError::new(
                "base-platform",
                place,
                format!(
                    "image `{}` is built for {platform} from a Dockerfile with `FROM {HIVE_PREFIX}{}`, which has no \
                     {platform} image (it has: {has})",
                    image.name, below.name
                ),
                format!("no {platform}"),
            )
            .help(format!(
                "add {platform} to the platforms of `{}`, or build `{}` for {has} only",
                below.name, image.name
            )),
        );
    }
}

/// The images from `start` down to `goal` (both included), following what each is built on; the first found in
/// name order, so the report is deterministic.
fn path(by_name: &BTreeMap<&str, &PlanImage>, start: &str, goal: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut seen = BTreeSet::from([start]);
    while let Some(name) = queue.pop_front() {
        if name == goal {
            let mut path = vec![goal.to_owned()];
            let mut at = goal;
            while let Some(previous) = came_from.get(at) {
                path.push((*previous).to_owned());
                at = previous;
            }
            path.reverse();
            return Some(path);
        }
        let Some(image) = by_name.get(name) else {
            continue;
        };
        let mut next: Vec<&str> = below(image).collect();
        next.sort_unstable();
        for next in next {
            if seen.insert(next) {
                came_from.insert(next, name);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The cycle error: every edge of the cycle with where it was written.
fn cycle_error(
    by_name: &BTreeMap<&str, &PlanImage>,
    cycle: &[String],
    place: &Place,
) -> ConfigError {
    let edges: Vec<String> = cycle
        .windows(2)
        .map(|pair| {
            let (image, on) = (pair[0].as_str(), pair[1].as_str());
            let Some(built) = by_name.get(image) else {
                return format!("`{image}` on `{on}`");
            };
            let (how, key) = match &built.base {
                Base::Hive { image } if image == on => (format!("base = \"hive:{on}\""), "base"),
                _ => (format!("FROM {HIVE_PREFIX}{on}"), "dockerfile"),
            };
            let at = built
                .origins
                .get(key)
                .map(Origin::to_string)
                .unwrap_or_default();
            format!("`{image}` is built on `{on}` ({how}, {at})")
        })
        .collect();
    ConfigError::new(
        "base-cycle",
        place,
        format!(
            "the images' bases form a cycle: {}; {}",
            cycle.join(" → "),
            edges.join("; ")
        ),
        "cycle",
    )
    .help("one image of the cycle must start from `scratch` or a registry image")
}

/// Adds to `needed` (image → platforms) every image a needed Dockerfile image names in `FROM hive-<name>`, with
/// the images of that image's chain, until nothing more is needed.
pub(super) fn add_from_images(
    needed: &mut BTreeMap<String, BTreeSet<Platform>>,
    images: &[PlanImage],
    facts: &BTreeMap<String, ImageFacts>,
) {
    loop {
        let mut more: Vec<(String, Platform)> = Vec::new();
        for image in images {
            let (Some(dockerfile), Some(platforms)) = (&image.dockerfile, needed.get(&image.name))
            else {
                continue;
            };
            for from in &dockerfile.hive_images {
                let Some(from_facts) = facts.get(from) else {
                    continue;
                };
                for on in from_facts
                    .platforms
                    .iter()
                    .filter(|on| platforms.contains(&on.platform))
                {
                    for name in &on.chain.images {
                        if !needed
                            .get(name)
                            .is_some_and(|have| have.contains(&on.platform))
                        {
                            more.push((name.clone(), on.platform.clone()));
                        }
                    }
                }
            }
        }
        if more.is_empty() {
            return;
        }
        for (name, platform) in more {
            needed.entry(name).or_default().insert(platform);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn froms(text: &str) -> Vec<(String, Option<String>)> {
        scan(text)
            .into_iter()
            .map(|from| (from.image, from.stage))
            .collect()
    }

    #[test]
    fn from_lines_are_found_with_flags_continuations_and_comments() {
        let text = "# syntax=docker/dockerfile:1\n\
            ARG BASE=debian\n\
            from --platform=$BUILDPLATFORM hive-builder AS Build\n\
            # FROM hive-commented\n\
            FROM \\\n\
            # a comment inside the instruction\n\
            \n\
              --platform=linux/amd64 \\\n\
              hive-runtime \\\n\
              as final\n\
            FROM $BASE\n\
            COPY --chown=1:1 --from=hive-tools /bin/tool /tool\n\
            COPY hive-not-a-from /x\n\
            RUN echo FROM hive-not-a-from\n";
        assert_eq!(
            froms(text),
            [
                ("hive-builder".into(), Some("build".into())),
                ("hive-runtime".into(), Some("final".into())),
                ("$BASE".into(), None),
                ("hive-tools".into(), None),
            ]
        );
    }

    #[test]
    fn an_escape_directive_changes_the_continuation_character() {
        let text = "# escape=`\nFROM `\n  hive-api AS x\nFROM c:\\path\\\n";
        assert_eq!(
            froms(text),
            [
                ("hive-api".into(), Some("x".into())),
                ("c:\\path\\".into(), None)
            ]
        );
    }

    #[test]
    fn hive_references_are_plain_image_names_that_are_not_stages() {
        let froms = scan(
            "FROM hive-api AS hive-base\n\
             FROM hive-base\n\
             FROM hive-tools:1.0\n\
             FROM hive-Upper\n\
             FROM localhost:5000/hive-x\n\
             FROM hive-runtime\n\
             FROM hive-api@sha256:00\n\
             COPY --from=hive-base /a /a\n\
             COPY --from=hive-tools /b /b\n",
        );
        let names: Vec<String> = hive_references(&froms).into_iter().collect();
        assert_eq!(names, ["api", "runtime", "tools"]);
    }

    #[test]
    fn an_empty_or_unfinished_file_has_no_from() {
        assert!(scan("").is_empty());
        assert!(scan("FROM").is_empty());
        assert_eq!(froms("FROM a \\"), [("a".into(), None)]);
    }
}
