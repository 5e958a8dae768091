//! From definitions to the plan: layers merged (workspace → package → image → build.rs; maps merge key by key,
//! lists and single values replace), defaults filled in, templates rendered, and every value checked. What comes out
//! has nothing left to check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use hive_build::plan::{
    Base, Binary, Edge, ImageConfig, Origin, PackageInfo, Plan, PlanDockerfile, PlanImage,
    PlatformPlan, Variant,
};
use hive_build::schema::{binary_path, defaults};
use hive_build::{Compression, ImageDef, SecretSource};

use crate::config::{
    ConfigError, Definitions, Diagnostics, ImageDefinition, Layer, Package, Place, did_you_mean,
};
use crate::plan::facts::{self, ImageFacts, PlatformFacts, Resolved, Walk};
use crate::plan::git::GitFacts;
use crate::plan::platform::Platform;
use crate::plan::reference::{Invalid, check_repository, check_tag, parse_base};
use crate::plan::template::{self, Context};

/// The layers of one image, lowest precedence first.
pub(super) struct Layers<'a>(pub(super) &'a [Layer]);

impl<'a> Layers<'a> {
    /// The value of the highest layer that sets it.
    pub(super) fn pick<T: ?Sized>(
        &self,
        get: impl Fn(&'a ImageDef) -> Option<&'a T>,
    ) -> Option<(&'a T, &'a Layer)> {
        self.0
            .iter()
            .rev()
            .find_map(|layer| get(&layer.def).map(|value| (value, layer)))
    }

    /// Where `layer` is in the stack: higher is more specific.
    fn position(&self, layer: &Layer) -> usize {
        (self.0.iter())
            .position(|candidate| std::ptr::eq(candidate, layer))
            .unwrap_or(0)
    }

    /// A map merged key by key; each entry with the layer that set it.
    pub(super) fn merged(
        &self,
        get: impl Fn(&'a ImageDef) -> &'a BTreeMap<String, String>,
    ) -> BTreeMap<&'a str, (&'a str, &'a Layer)> {
        let mut merged = BTreeMap::new();
        for layer in self.0 {
            for (key, value) in get(&layer.def) {
                merged.insert(key.as_str(), (value.as_str(), layer));
            }
        }
        merged
    }

    fn registry(&self) -> Option<(&'a str, &'a Layer)> {
        self.0
            .iter()
            .rev()
            .find_map(|layer| layer.registry.as_deref().map(|registry| (registry, layer)))
    }
}

fn set_origin(origins: &mut BTreeMap<String, Origin>, key: &str, layer: Option<&Layer>) {
    origins.insert(
        key.to_owned(),
        layer.map_or(Origin::Default, |layer| layer.place(key).origin()),
    );
}

fn invalid(
    code: &'static str,
    place: &Place,
    what: String,
    invalid: Invalid,
    label: &str,
) -> ConfigError {
    let error = ConfigError::new(code, place, format!("{what}: {}", invalid.reason), label);
    match invalid.help {
        Some(help) => error.help(help),
        None => error,
    }
}

/// The images that resolved and their facts; the plan once selected.
#[derive(Debug)]
pub(crate) struct Assembled {
    images: Vec<PlanImage>,
    facts: BTreeMap<String, ImageFacts>,
    /// Target triples some image's platforms need that its package's build script was not run for: the build
    /// scripts must run again with these before the plan is whole.
    pub(crate) missing_triples: BTreeSet<String>,
}

/// Resolves every image of the workspace. Mistakes go to `diags`; the images that resolved are returned.
pub(crate) fn resolve_all(
    definitions: &Definitions,
    context: &Context<'_>,
    diags: &mut Diagnostics,
) -> Assembled {
    let names: BTreeSet<&str> = definitions
        .images
        .iter()
        .map(|image| image.name.as_str())
        .collect();
    let mut images = Vec::new();
    let mut platforms = BTreeMap::new();
    let mut missing_triples = BTreeSet::new();
    for definition in &definitions.images {
        let package = &definitions.workspace.packages[definition.package];
        let runs = definitions.script_runs.get(&definition.package);
        let image = ImageInput {
            definition,
            package,
            runs,
            root: &definitions.workspace.root,
            names: &names,
        };
        match resolve_image(&image, context, diags) {
            Ok(Some((image, typed))) => {
                platforms.insert(image.name.clone(), typed);
                images.push(image);
            }
            Ok(None) => {}
            Err(missing) => missing_triples.extend(missing),
        }
    }
    images.sort_by(|a, b| a.name.cmp(&b.name));
    let chains = chains(&images, &platforms, definitions, diags);
    super::dockerfile::check_graph(&images, definitions, diags);
    let facts = chains
        .into_iter()
        .map(|(name, platforms)| (name, ImageFacts { platforms }))
        .collect();
    Assembled {
        images,
        facts,
        missing_triples,
    }
}

/// What one image is resolved from.
struct ImageInput<'a> {
    definition: &'a ImageDefinition,
    package: &'a Package,
    /// The triples the package's build script ran for (`None`: it declares nothing through `hive-build`).
    runs: Option<&'a BTreeSet<String>>,
    root: &'a Path,
    names: &'a BTreeSet<&'a str>,
}

/// One platform of a resolved image, before its `hive:` chain is walked.
#[derive(Debug, Clone)]
pub(super) struct PlatformTarget {
    pub(super) platform: Platform,
    pub(super) triple: String,
    /// Where `base` was set for this platform (the image's declaration when it is the default).
    pub(super) base_place: Place,
}

/// An image resolved from one view of its layers (all of them, or those of one build-script run).
struct Resolution {
    image: PlanImage,
    platforms: Vec<PlatformTarget>,
    /// Where each platform's triple came from.
    target_origins: Vec<Origin>,
}

/// Resolves an image once per target triple its build script ran for (cargo runs a build script once per triple,
/// so each run's declarations apply to that triple's platforms), checks that what belongs to the image as a whole
/// agrees between the runs, and takes each platform's values from its triple's run. `Err` holds the triples the
/// build script still has to run for.
fn resolve_image(
    input: &ImageInput<'_>,
    context: &Context<'_>,
    diags: &mut Diagnostics,
) -> Result<Option<(PlanImage, Vec<PlatformTarget>)>, BTreeSet<String>> {
    let definition = input.definition;
    let views = views(input);
    let mut resolutions = Vec::new();
    for (run, layers) in &views {
        let assembler = Assembler::new(definition, layers, input.package, diags);
        let Some(resolution) = assembler.resolve(input.root, input.names, context) else {
            return Ok(None);
        };
        resolutions.push((*run, resolution));
    }
    if let Some(error) = disagreeing_runs(input, &resolutions) {
        diags.push(error);
        return Ok(None);
    }
    let per_platform = per_platform(&resolutions)?;
    let Resolution {
        mut image,
        platforms,
        ..
    } = resolutions.swap_remove(0).1;
    let platforms = platforms
        .into_iter()
        .zip(&per_platform)
        .map(|(target, plan)| PlatformTarget {
            base_place: base_place(definition, &views, &plan.target, target.base_place),
            ..target
        })
        .collect();
    image.per_platform = per_platform;
    // The image's own values are its first platform's, so readers of one-platform plans see what they did.
    if let Some(first) = image.platforms.first().cloned() {
        facts::take_platform_values(&mut image, &first);
    }
    Ok(Some((image, platforms)))
}

/// The image's layers as each build-script run sees them: the manifest's and that run's own; all of them when its
/// package declares nothing through `hive-build`.
fn views<'a>(input: &ImageInput<'a>) -> Vec<(Option<&'a str>, Vec<Layer>)> {
    let definition = input.definition;
    match input.runs {
        Some(runs) if !runs.is_empty() => runs
            .iter()
            .map(|run| {
                let layers = (definition.layers.iter())
                    .filter(|layer| layer.target.as_deref().is_none_or(|target| target == run))
                    .cloned()
                    .collect();
                (Some(run.as_str()), layers)
            })
            .collect(),
        _ => vec![(None, definition.layers.clone())],
    }
}

/// What belongs to the image as a whole must be the same in every build-script run.
fn disagreeing_runs(
    input: &ImageInput<'_>,
    resolutions: &[(Option<&str>, Resolution)],
) -> Option<ConfigError> {
    let (first_run, first) = &resolutions[0];
    resolutions[1..].iter().find_map(|(run, other)| {
        let (field, a, b) = disagreement(first, other)?;
        let (image, package) = (&input.definition.name, &input.package.name);
        let runs = (first_run.unwrap_or_default(), run.unwrap_or_default());
        let place = Place::BuildScript {
            package: package.clone(),
            image: image.clone(),
        };
        let message = format!(
            "the build script gives {field} {a} when cargo runs it for {} but {b} when it runs for {}",
            runs.0, runs.1
        );
        Some(ConfigError::new("build-script-disagrees", &place, message, "").help(
            "values of a platform (base, env, labels, files, …) may differ between targets; the image's name, \
             binary, repository, tags, aliases, sbom, platforms, targets and run steps must not",
        ))
    })
}

/// Each platform's values, from the run for its triple; `Err` holds the triples no run was for.
fn per_platform(
    resolutions: &[(Option<&str>, Resolution)],
) -> Result<Vec<PlatformPlan>, BTreeSet<String>> {
    let (first_run, first) = &resolutions[0];
    let mut missing = BTreeSet::new();
    let mut per_platform = Vec::new();
    for (index, target) in first.platforms.iter().enumerate() {
        let chosen = match first_run {
            None => Some(first),
            Some(_) => (resolutions.iter())
                .find(|(run, _)| *run == Some(target.triple.as_str()))
                .map(|(_, resolution)| resolution),
        };
        let Some(chosen) = chosen else {
            missing.insert(target.triple.clone());
            continue;
        };
        let mut origins = chosen.image.origins.clone();
        origins.insert("target".to_owned(), first.target_origins[index].clone());
        per_platform.push(PlatformPlan {
            platform: target.platform.to_string(),
            target: target.triple.clone(),
            base: chosen.image.base.clone(),
            files: chosen.image.files.clone(),
            config: chosen.image.config.clone(),
            origins,
        });
    }
    if missing.is_empty() {
        Ok(per_platform)
    } else {
        Err(missing)
    }
}

/// Where `base` was set in the view of `triple`'s build-script run.
fn base_place(
    definition: &ImageDefinition,
    views: &[(Option<&str>, Vec<Layer>)],
    triple: &str,
    fallback: Place,
) -> Place {
    let layers = views
        .iter()
        .find(|(run, _)| run.is_none_or(|run| run == triple))
        .map_or(&definition.layers[..], |(_, layers)| &layers[..]);
    Layers(layers)
        .pick(|def| def.base.as_deref())
        .map_or(fallback, |(_, layer)| layer.place("base"))
}

/// The first value of the image as a whole that two build-script runs disagree on: (key, one value, the other).
fn disagreement(a: &Resolution, b: &Resolution) -> Option<(&'static str, String, String)> {
    let quote = |value: &dyn std::fmt::Debug| format!("{value:?}");
    let triples = |r: &Resolution| -> Vec<(String, String)> {
        (r.platforms.iter())
            .map(|p| (p.platform.to_string(), p.triple.clone()))
            .collect()
    };
    let fields: [(&'static str, String, String); 10] = [
        (
            "binary",
            quote(&a.image.binary.target),
            quote(&b.image.binary.target),
        ),
        (
            "repository",
            quote(&a.image.repository),
            quote(&b.image.repository),
        ),
        ("tags", quote(&a.image.tags), quote(&b.image.tags)),
        ("aliases", quote(&a.image.aliases), quote(&b.image.aliases)),
        ("sbom", quote(&a.image.sbom), quote(&b.image.sbom)),
        (
            "compression",
            quote(&(a.image.compression, a.image.compression_level)),
            quote(&(b.image.compression, b.image.compression_level)),
        ),
        (
            "platforms",
            quote(&a.image.platforms),
            quote(&b.image.platforms),
        ),
        ("targets", quote(&triples(a)), quote(&triples(b))),
        (
            "annotations",
            quote(&a.image.config.annotations),
            quote(&b.image.config.annotations),
        ),
        ("run", quote(&a.image.run), quote(&b.image.run)),
    ];
    fields.into_iter().find(|(_, a, b)| a != b)
}

/// One image being resolved: its layers, the origin of each value so far, and where mistakes go. Each step
/// resolves one key (or a few that belong together) in the order the diagnostics are reported.
struct Assembler<'a, 'd> {
    definition: &'a ImageDefinition,
    package: &'a Package,
    layers: Layers<'a>,
    name: &'a str,
    origins: BTreeMap<String, Origin>,
    diags: &'d mut Diagnostics,
}

impl<'a, 'd> Assembler<'a, 'd> {
    fn new(
        definition: &'a ImageDefinition,
        layers: &'a [Layer],
        package: &'a Package,
        diags: &'d mut Diagnostics,
    ) -> Self {
        Assembler {
            definition,
            package,
            layers: Layers(layers),
            name: definition.name.as_str(),
            origins: BTreeMap::new(),
            diags,
        }
    }

    /// Every step in turn; the image, if none of them found a mistake.
    fn resolve(
        mut self,
        root: &Path,
        names: &BTreeSet<&str>,
        context: &Context<'_>,
    ) -> Option<Resolution> {
        let errors_before = self.diags.len();
        let bin = self.bin();
        let dockerfile_key = self.layers.pick(|def| def.dockerfile.as_deref());
        let (base, base_place) = self.base_and_place(names, dockerfile_key.map(|(_, l)| l));
        let repository = self.repository();
        let tags = self.tags(context);
        let aliases = self.flag("aliases", |def| def.aliases.as_ref());
        self.variant_aliases(aliases);
        let sbom = self.flag("sbom", |def| def.sbom.as_ref());
        let (compression, compression_level) = self.compression();
        let (platforms, typed) = self.platforms();
        let targets = self.targets(&typed);
        let binary = Binary {
            target: bin.clone(),
            path: binary_path(&bin),
        };
        let dockerfile =
            dockerfile_key.map(|(text, layer)| self.dockerfile(root, names, (text, layer)));
        let mut config = match dockerfile {
            // The Dockerfile makes the config; only labels and annotations are ours.
            Some(_) => ImageConfig::default(),
            None => self.config(&binary),
        };
        config.labels = self.labels();
        config.annotations = self.annotations();
        super::nul::check(&self.layers, self.diags);
        let (files, run) = match dockerfile {
            Some(_) => (Vec::new(), Vec::new()),
            None => (self.files(root, &binary), self.run(root)),
        };
        let secrets = self.secrets(root);
        if self.diags.len() > errors_before {
            return None;
        }
        let references = tags
            .iter()
            .map(|tag| format!("{repository}:{tag}"))
            .collect();
        let image = PlanImage {
            name: self.name.to_owned(),
            package: package_info(self.package, root),
            declared_in: self.definition.declared.origin(),
            variant: self.definition.variant.as_ref().map(|variant| Variant {
                image: variant.of.clone(),
                name: variant.name.clone(),
                tag_suffix: variant
                    .tag_suffix
                    .as_ref()
                    .map(|(suffix, _)| suffix.clone()),
            }),
            binary,
            repository,
            tags,
            references,
            aliases,
            platforms,
            base,
            files,
            config,
            sbom,
            compression,
            compression_level,
            secrets,
            origins: self.origins,
            selected: true,
            run,
            dockerfile,
            per_platform: Vec::new(),
        };
        let (platforms, target_origins) = typed
            .into_iter()
            .zip(targets)
            .map(|(platform, (triple, origin))| {
                let target = PlatformTarget {
                    platform,
                    triple,
                    base_place: base_place.clone(),
                };
                (target, origin)
            })
            .unzip();
        Some(Resolution {
            image,
            platforms,
            target_origins,
        })
    }

    /// The base and where it was set. A Dockerfile image's base is its `FROM` lines (at `dockerfile`); the
    /// `base`, `run` and `files` it inherits are not used.
    fn base_and_place(
        &mut self,
        names: &BTreeSet<&str>,
        dockerfile: Option<&Layer>,
    ) -> (Base, Place) {
        if let Some(layer) = dockerfile {
            let place = layer.place("dockerfile");
            self.origins.insert("base".into(), place.origin());
            return (Base::Dockerfile, place);
        }
        let base = self.base(names);
        let place = self
            .layers
            .pick(|def| def.base.as_deref())
            .map_or(self.definition.declared.clone(), |(_, layer)| {
                layer.place("base")
            });
        (base, place)
    }

    /// Each platform's Rust target triple: `targets` (merged across layers), else the platform's default; each
    /// checked against its platform.
    fn targets(&mut self, platforms: &[Platform]) -> Vec<(String, Origin)> {
        let merged = self.layers.merged(|def| &def.targets);
        for (key, (_, layer)) in &merged {
            if let Err(why) = Platform::parse(key) {
                let what = format!("`targets` key `{key}` is not a platform");
                let place = layer.place(&format!("targets.{key}#key"));
                self.diags.push(invalid(
                    "invalid-platform",
                    &place,
                    what,
                    why,
                    "not a platform",
                ));
            }
        }
        let mut targets = Vec::new();
        for platform in platforms {
            let key = platform.to_string();
            let (triple, origin) = match merged.get(key.as_str()) {
                Some((triple, layer)) => {
                    let place = layer.place(&format!("targets.{key}"));
                    if let Err(why) = super::triple::check(triple, platform) {
                        self.diags.push(invalid(
                            "invalid-target",
                            &place,
                            format!("invalid target for {platform}"),
                            why,
                            "invalid target",
                        ));
                    }
                    ((*triple).to_owned(), place.origin())
                }
                None => match super::triple::default_triple(platform) {
                    Some(triple) => (triple.to_owned(), Origin::Default),
                    None => {
                        let (_, layer) = self
                            .layers
                            .pick(|def| def.platforms.as_ref())
                            .map_or((None, None), |(p, l)| (Some(p), Some(l)));
                        let index = platforms.iter().position(|p| p == platform).unwrap_or(0);
                        self.diags.push(
                            ConfigError::new(
                                "no-default-target",
                                &self.list_place(layer, "platforms", index),
                                format!("{platform} has no default Rust target"),
                                "no default target",
                            )
                            .help(format!(
                                "name one in `targets`, for example `targets = {{ \"{platform}\" = \"<triple>\" }}`"
                            )),
                        );
                        (String::new(), Origin::Default)
                    }
                },
            };
            targets.push((triple, origin));
        }
        targets
    }

    /// Where a list's entry is: the layer that set the list, else where the image was declared.
    fn list_place(&self, layer: Option<&Layer>, key: &str, index: usize) -> Place {
        layer.map_or(self.definition.declared.clone(), |layer| {
            layer.place(&format!("{key}[{index}]"))
        })
    }

    fn bin(&mut self) -> String {
        let Some((bin, layer)) = self.layers.pick(|def| def.bin.as_deref()) else {
            set_origin(&mut self.origins, "bin", None);
            return self.only_bin();
        };
        set_origin(&mut self.origins, "bin", Some(layer));
        let package = self.package;
        if !package.bins.iter().any(|known| known == bin) {
            let error = ConfigError::new(
                "unknown-bin",
                &layer.place("bin"),
                format!("package `{}` has no binary target `{bin}`", package.name),
                "no such binary",
            );
            let error = match (
                did_you_mean(bin, package.bins.iter().map(String::as_str)),
                package.bins.is_empty(),
            ) {
                (Some(close), _) => error.help(format!("did you mean `{close}`?")),
                (None, true) => error.help(format!(
                    "package `{}` has no `[[bin]]` target",
                    package.name
                )),
                (None, false) => error.help(format!("its binaries: {}", package.bins.join(", "))),
            };
            self.diags.push(error);
        }
        bin.to_owned()
    }

    /// No `bin` key: the package's only binary.
    fn only_bin(&mut self) -> String {
        let (name, package) = (self.name, &self.package.name);
        let error = match &self.package.bins[..] {
            [only] => return only.clone(),
            [] => ConfigError::new(
                "no-bin",
                &self.definition.declared,
                format!(
                    "image `{name}` has no binary to package: package `{package}` has no binary target"
                ),
                "no binary",
            )
            .help("declare images in the package that builds the binary (with `src/main.rs` or `[[bin]]`)"),
            several => ConfigError::new(
                "ambiguous-bin",
                &self.definition.declared,
                format!("image `{name}` does not say which binary of package `{package}` to package"),
                "which binary?",
            )
            .help(format!("set `bin` to one of: {}", several.join(", "))),
        };
        self.diags.push(error);
        String::new()
    }

    fn base(&mut self, names: &BTreeSet<&str>) -> Base {
        let Some((text, layer)) = self.layers.pick(|def| def.base.as_deref()) else {
            set_origin(&mut self.origins, "base", None);
            return parse_base(defaults::BASE).expect("the default base parses");
        };
        set_origin(&mut self.origins, "base", Some(layer));
        let place = layer.place("base");
        let name = self.name;
        match parse_base(text) {
            Ok(Base::Hive { image }) if !names.contains(image.as_str()) || image == name => {
                let reason = if image == name {
                    "an image cannot be its own base"
                } else {
                    "no such image"
                };
                let error = ConfigError::new(
                    "unknown-base-image",
                    &place,
                    format!("`base = \"{text}\"` names no other image of the workspace"),
                    reason,
                );
                let others = names.iter().copied().filter(|other| *other != name);
                self.diags.push(match did_you_mean(&image, others) {
                    Some(close) => error.help(format!("did you mean `hive:{close}`?")),
                    None => error.help("`hive:<name>` names an image declared in this workspace"),
                });
                Base::Scratch
            }
            Ok(base) => base,
            Err(why) => {
                let what = format!("invalid base image `{text}`");
                self.diags
                    .push(invalid("invalid-base", &place, what, why, "invalid"));
                Base::Scratch
            }
        }
    }

    fn repository(&mut self) -> String {
        if let Some((repository, layer)) = self.layers.pick(|def| def.repository.as_deref()) {
            set_origin(&mut self.origins, "repository", Some(layer));
            if let Err(why) = check_repository(repository) {
                let what = format!("invalid repository `{repository}`");
                let place = layer.place("repository");
                self.diags
                    .push(invalid("invalid-repository", &place, what, why, "invalid"));
            }
            return repository.to_owned();
        }
        // A variant lives in its image's repository, under its own tags.
        let name = self
            .definition
            .variant
            .as_ref()
            .map_or(self.name, |variant| variant.of.as_str());
        let Some((registry, layer)) = self.layers.registry() else {
            set_origin(&mut self.origins, "repository", None);
            return name.to_owned();
        };
        let repository = format!("{}/{}", registry.trim_end_matches('/'), name);
        if let Err(mut why) = check_repository(&repository) {
            if registry != registry.to_lowercase() {
                why.help = Some(format!("write `{}`", registry.to_lowercase()));
            }
            let what = format!("invalid registry `{registry}`");
            let place = layer.place("registry");
            self.diags
                .push(invalid("invalid-registry", &place, what, why, "invalid"));
        }
        self.origins
            .insert("repository".into(), layer.place("registry").origin());
        repository
    }

    fn tags(&mut self, context: &Context<'_>) -> Vec<String> {
        let (templates, layer): (Vec<String>, Option<&Layer>) =
            match self.layers.pick(|def| def.tags.as_ref()) {
                Some((tags, layer)) => (tags.clone(), Some(layer)),
                None => (
                    defaults::TAGS.iter().map(|tag| (*tag).to_owned()).collect(),
                    None,
                ),
            };
        set_origin(&mut self.origins, "tags", layer);
        if templates.is_empty() {
            self.diags.push(
                ConfigError::new(
                    "no-tags",
                    &self.list_place(layer, "tags", 0),
                    format!("image `{}` has no tags", self.name),
                    "empty",
                )
                .help("list at least one tag, for example `tags = [\"{version}\"]`"),
            );
        }
        let mut tags: Vec<String> = Vec::new();
        let suffix = self
            .definition
            .variant
            .as_ref()
            .and_then(|variant| variant.tag_suffix.clone());
        // A suffix that spoils every tag is reported once, at the suffix.
        let mut suffix_reported = false;
        for (index, template) in templates.iter().enumerate() {
            let place = self.list_place(layer, "tags", index);
            match template::render(template, &self.package.version, context) {
                Ok(tag) => {
                    let (tag, template, place, by_suffix) = match &suffix {
                        // A bad tag made by the suffix is shown at the suffix (or at the variant, for the default).
                        Some((suffix, suffix_place)) if check_tag(&tag).is_ok() => (
                            format!("{tag}{suffix}"),
                            format!("{template}` with tag suffix `{suffix}"),
                            suffix_place.clone(),
                            true,
                        ),
                        Some((suffix, _)) => {
                            (format!("{tag}{suffix}"), template.clone(), place, false)
                        }
                        None => (tag, template.clone(), place, false),
                    };
                    match self.tag_mistake(&tag, &template, &tags, &place) {
                        Some(_) if by_suffix && suffix_reported => {}
                        Some(error) => {
                            suffix_reported |= by_suffix;
                            self.diags.push(error);
                        }
                        None => tags.push(tag),
                    }
                }
                Err(errors) => {
                    for error in errors {
                        let inner = place.inner(template, error.offset, error.len);
                        let mut out =
                            ConfigError::new("template", &inner, error.message, error.label);
                        if let Some(help) = error.help {
                            out = out.help(help);
                        }
                        self.diags.push(out);
                    }
                }
            }
        }
        tags
    }

    /// What is wrong with a rendered tag, if anything: its grammar, or that it is there already.
    fn tag_mistake(
        &self,
        tag: &str,
        template: &str,
        tags: &[String],
        place: &Place,
    ) -> Option<ConfigError> {
        if let Err(why) = check_tag(tag) {
            let shown = if tag == template {
                format!("`{tag}`")
            } else {
                format!("`{tag}` (from `{template}`)")
            };
            let what = format!("invalid tag {shown}");
            return Some(invalid("invalid-tag", place, what, why, "invalid tag"));
        }
        tags.iter().any(|known| known == tag).then(|| {
            ConfigError::new(
                "duplicate-tag",
                place,
                format!("tag `{tag}` appears twice in image `{}`", self.name),
                "again",
            )
            .help("remove one of them")
        })
    }

    /// A variant shares its image's repository, so `release`'s alias tags (`1.2`, `1`, unsuffixed) would move the
    /// image's own: refused until aliases learn the suffix.
    fn variant_aliases(&mut self, aliases: bool) {
        let Some(variant) = &self.definition.variant else {
            return;
        };
        if !aliases {
            return;
        }
        let place = self
            .layers
            .pick(|def| def.aliases.as_ref())
            .map_or(self.definition.declared.clone(), |(_, layer)| {
                layer.place("aliases")
            });
        self.diags.push(
            ConfigError::new(
                "variant-aliases",
                &place,
                format!(
                    "variant `{}` would take the alias tags of image `{}`",
                    self.name, variant.of
                ),
                "aliases on",
            )
            .help(format!(
                "set `aliases = false` in `[…images.{}.variants.{}]`: a variant's alias tags are not supported yet",
                variant.of, variant.name
            )),
        );
    }

    /// A yes-or-no key (`aliases`, `sbom`): the most specific layer's value, off when no layer sets it. Its origin is
    /// recorded only when a layer sets it.
    fn flag(&mut self, key: &str, get: impl Fn(&'a ImageDef) -> Option<&'a bool>) -> bool {
        match self.layers.pick(get) {
            Some((value, layer)) => {
                set_origin(&mut self.origins, key, Some(layer));
                *value
            }
            None => false,
        }
    }

    /// `compression` and `compression-level`, each the most specific layer's; the level must be one the
    /// compression takes (none for `uncompressed`).
    fn compression(&mut self) -> (Compression, Option<u32>) {
        let picked = self.layers.pick(|def| def.compression.as_ref());
        set_origin(
            &mut self.origins,
            "compression",
            picked.map(|(_, layer)| layer),
        );
        let compression = picked.map_or(Compression::Gzip, |(compression, _)| *compression);
        let Some((level, layer)) = self.layers.pick(|def| def.compression_level.as_ref()) else {
            return (compression, None);
        };
        // A level below the layer that chose the compression was meant for another compression.
        if let Some((_, chosen)) = picked
            && self.layers.position(layer) < self.layers.position(chosen)
        {
            return (compression, None);
        }
        set_origin(&mut self.origins, "compression-level", Some(layer));
        let levels = compression.levels();
        if levels.as_ref().is_some_and(|levels| levels.contains(level)) {
            return (compression, Some(*level));
        }
        let (message, help) = match levels {
            Some(levels) => (
                format!(
                    "{compression} has no level {level}: image `{}` is compressed with {compression}",
                    self.name
                ),
                format!(
                    "{compression} takes {} to {} (default {})",
                    levels.start(),
                    levels.end(),
                    compression.default_level().unwrap_or_default()
                ),
            ),
            None => (
                format!("image `{}` is uncompressed: it takes no level", self.name),
                "remove `compression-level`, or set `compression` to `gzip` or `zstd`".to_owned(),
            ),
        };
        self.diags.push(
            ConfigError::new(
                "invalid-compression-level",
                &layer.place("compression-level"),
                message,
                "not a level of this compression",
            )
            .help(help),
        );
        (compression, None)
    }

    /// The platforms as written (for the public plan) and parsed (for the engine).
    fn platforms(&mut self) -> (Vec<String>, Vec<Platform>) {
        let (platforms, layer): (Vec<String>, Option<&Layer>) =
            match self.layers.pick(|def| def.platforms.as_ref()) {
                Some((platforms, layer)) => (platforms.clone(), Some(layer)),
                None => (
                    defaults::PLATFORMS
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect(),
                    None,
                ),
            };
        set_origin(&mut self.origins, "platforms", layer);
        if platforms.is_empty() {
            self.diags.push(
                ConfigError::new(
                    "no-platforms",
                    &self.list_place(layer, "platforms", 0),
                    format!("image `{}` has no platforms", self.name),
                    "empty",
                )
                .help("list at least one, for example `platforms = [\"linux/amd64\"]`"),
            );
        }
        let mut typed = Vec::new();
        for (index, platform) in platforms.iter().enumerate() {
            let place = self.list_place(layer, "platforms", index);
            match Platform::parse(platform) {
                Err(why) => {
                    let what = format!("invalid platform `{platform}`");
                    self.diags.push(invalid(
                        "invalid-platform",
                        &place,
                        what,
                        why,
                        "invalid platform",
                    ));
                }
                Ok(_) if platforms[..index].contains(platform) => {
                    self.diags.push(
                        ConfigError::new(
                            "duplicate-platform",
                            &place,
                            format!("platform `{platform}` is listed twice"),
                            "again",
                        )
                        .help("remove one of them"),
                    );
                }
                Ok(parsed) => typed.push(parsed),
            }
        }
        (platforms, typed)
    }

    /// The image config but its labels and annotations.
    fn config(&mut self, binary: &Binary) -> ImageConfig {
        let entrypoint = match self.layers.pick(|def| def.entrypoint.as_ref()) {
            Some((entrypoint, layer)) => {
                set_origin(&mut self.origins, "entrypoint", Some(layer));
                entrypoint.clone()
            }
            None => {
                set_origin(&mut self.origins, "entrypoint", None);
                vec![binary.path.clone()]
            }
        };
        let cmd = self.layers.pick(|def| def.cmd.as_ref());
        set_origin(&mut self.origins, "cmd", cmd.map(|(_, layer)| layer));
        let exposed_ports = match self.layers.pick(|def| def.expose.as_ref()) {
            Some((ports, layer)) => {
                set_origin(&mut self.origins, "expose", Some(layer));
                let mut ports = ports.clone();
                ports.sort();
                ports.dedup();
                ports
            }
            None => Vec::new(),
        };
        ImageConfig {
            entrypoint,
            cmd: cmd.map(|(cmd, _)| cmd.clone()).unwrap_or_default(),
            workdir: self.workdir(),
            user: self.user(),
            exposed_ports,
            env: self.env(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    fn workdir(&mut self) -> Option<String> {
        let (workdir, layer) = self.layers.pick(|def| def.workdir.as_deref())?;
        set_origin(&mut self.origins, "workdir", Some(layer));
        if !workdir.starts_with('/') {
            self.diags.push(
                ConfigError::new(
                    "relative-path",
                    &layer.place("workdir"),
                    format!("`workdir` must be an absolute path, not `{workdir}`"),
                    "relative",
                )
                .help(format!("write `/{}`", workdir.trim_start_matches("./"))),
            );
        }
        Some(workdir.to_owned())
    }

    fn user(&mut self) -> Option<String> {
        let (user, layer) = self.layers.pick(|def| def.user.as_deref())?;
        set_origin(&mut self.origins, "user", Some(layer));
        if user.is_empty() || user.contains(char::is_whitespace) {
            self.diags.push(
                ConfigError::new("invalid-user", &layer.place("user"), format!("invalid user `{user}`"), "invalid")
                    .help("a user is a name or uid, optionally with a group: `nonroot`, `65532`, `65532:65532`"),
            );
        }
        Some(user.to_owned())
    }

    fn env(&mut self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for (key, (value, layer)) in self.layers.merged(|def| &def.env) {
            set_origin(&mut self.origins, &format!("env.{key}"), Some(layer));
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                self.diags.push(
                    ConfigError::new(
                        "invalid-env",
                        &layer.place(&format!("env.{key}#key")),
                        format!("invalid environment variable name `{key}`"),
                        "invalid name",
                    )
                    .help("a name is not empty and has no `=`"),
                );
            }
            env.insert(key.to_owned(), value.to_owned());
        }
        env
    }

    /// The labels derived from the package, then the definitions' own on top.
    fn labels(&mut self) -> BTreeMap<String, String> {
        let package = self.package;
        let mut labels = BTreeMap::new();
        for (key, value, field) in [
            ("title", Some(self.name.to_owned()), "name"),
            ("version", Some(package.version.to_string()), "version"),
            ("description", package.description.clone(), "description"),
            ("licenses", package.license.clone(), "license"),
            ("source", package.repository.clone(), "repository"),
            ("url", package.homepage.clone(), "homepage"),
        ] {
            if let Some(value) = value {
                labels.insert(format!("org.opencontainers.image.{key}"), value);
                self.origins.insert(
                    format!("labels.org.opencontainers.image.{key}"),
                    Place::PackageField(field).origin(),
                );
            }
        }
        // The title is the image's name; say so rather than pretending it is the package's.
        self.origins.insert(
            "labels.org.opencontainers.image.title".into(),
            Origin::Default,
        );
        labels.extend(self.keyed("labels", |def| &def.labels));
        labels
    }

    fn annotations(&mut self) -> BTreeMap<String, String> {
        self.keyed("annotations", |def| &def.annotations)
    }

    /// A map of labels or annotations merged across layers, each key's origin recorded and checked.
    fn keyed(
        &mut self,
        field: &str,
        get: impl Fn(&'a ImageDef) -> &'a BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut merged = BTreeMap::new();
        for (key, (value, layer)) in self.layers.merged(get) {
            if key.is_empty() {
                self.diags.push(ConfigError::new(
                    "invalid-key",
                    &layer.place(&format!("{field}.#key")),
                    format!("empty key in `{field}`"),
                    "empty",
                ));
            }
            self.origins.insert(
                format!("{field}.{key}"),
                layer.place(&format!("{field}.{key}")).origin(),
            );
            merged.insert(key.to_owned(), value.to_owned());
        }
        merged
    }

    /// `run`: the steps of the layer that set it, each with its origin under `run[<index>]`.
    fn run(&mut self, root: &Path) -> Vec<hive_build::plan::PlanRunStep> {
        let Some((steps, layer)) = self.layers.pick(|def| def.run.as_ref()) else {
            return Vec::new();
        };
        set_origin(&mut self.origins, "run", Some(layer));
        for index in 0..steps.len() {
            set_origin(&mut self.origins, &format!("run[{index}]"), Some(layer));
        }
        super::run::resolve(steps, layer, root, self.diags)
    }

    fn files(&mut self, root: &Path, binary: &Binary) -> Vec<hive_build::plan::PlanFile> {
        let Some((specs, layer)) = self.layers.pick(|def| def.files.as_ref()) else {
            return Vec::new();
        };
        self.origins
            .insert("files".into(), layer.place("files").origin());
        let binary = (!binary.target.is_empty()).then_some(binary.path.as_str());
        super::files::resolve(specs, layer, self.package, root, binary, self.diags)
    }
}

impl<'a> Assembler<'a, '_> {
    /// `dockerfile` and its keys: the keys a Dockerfile replaces refused where the image sets them itself, the
    /// Dockerfile and context checked, its `FROM hive-<name>` lines resolved.
    fn dockerfile(
        &mut self,
        root: &Path,
        names: &BTreeSet<&str>,
        dockerfile: (&'a str, &'a Layer),
    ) -> PlanDockerfile {
        let definition = self.definition;
        let layers = self.layers.0;
        super::dockerfile::refuse_replaced(self.name, layers, &definition.declared, self.diags);
        let input = super::dockerfile::Input {
            name: self.name,
            package: self.package,
            root,
            names,
            dockerfile,
            context: self.layers.pick(|def| def.context.as_deref()),
            target: self.layers.pick(|def| def.target.as_deref()),
            build_args: self.layers.merged(|def| &def.build_args),
        };
        super::dockerfile::resolve(&input, &mut self.origins, self.diags)
    }
}

impl Assembler<'_, '_> {
    /// `secrets` merged id by id: each id usable as a file name under `/run/secrets`, each source named, a relative
    /// file made absolute from the directory of the manifest that declares it (`~/` is kept: it is expanded when a
    /// build reads the value, so the plan does not depend on `HOME`).
    fn secrets(&mut self, root: &Path) -> BTreeMap<String, SecretSource> {
        let mut merged: BTreeMap<&str, (&SecretSource, &Layer)> = BTreeMap::new();
        for layer in self.layers.0 {
            for (id, source) in &layer.def.secrets {
                merged.insert(id.as_str(), (source, layer));
            }
        }
        let mut secrets = BTreeMap::new();
        for (id, (source, layer)) in merged {
            let path = format!("secrets.{id}");
            self.origins
                .insert(path.clone(), layer.place(&path).origin());
            if let Err(why) = check_secret_id(id) {
                self.diags.push(
                    ConfigError::new(
                        "invalid-secret",
                        &layer.place(&format!("{path}#key")),
                        format!("invalid secret id `{id}`: {why}"),
                        "invalid id",
                    )
                    .help("a secret id is a file name under `/run/secrets`: letters, digits, `-`, `_` and `.`"),
                );
                continue;
            }
            match secret_source(source, layer, self.package, root) {
                Ok(source) => {
                    secrets.insert(id.to_owned(), source);
                }
                Err(why) => self.diags.push(
                    ConfigError::new(
                        "invalid-secret",
                        &layer.place(&path),
                        format!("invalid source of the secret `{id}`: {why}"),
                        "invalid source",
                    )
                    .help("write `{ env = \"NAME\" }` or `{ file = \"path\" }`; only `~/` is expanded"),
                ),
            }
        }
        secrets
    }
}

/// Why a secret id is not a plain file name.
fn check_secret_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("it is empty");
    }
    if id == "." || id == ".." {
        return Err("it is not a file name");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("it has a character other than letters, digits, `-`, `_` and `.`");
    }
    Ok(())
}

/// A source checked, its relative file made absolute from the directory of the manifest that declared it (a build
/// script's: its package's).
fn secret_source(
    source: &SecretSource,
    layer: &Layer,
    package: &Package,
    root: &Path,
) -> Result<SecretSource, &'static str> {
    match source {
        SecretSource::Env(name) if name.is_empty() || name.contains(['=', '\0']) => {
            Err("an environment variable's name is not empty and has no `=`")
        }
        SecretSource::Env(_) => Ok(source.clone()),
        SecretSource::File(file) if file.is_empty() || file.contains('\0') => {
            Err("the file's path is empty")
        }
        SecretSource::File(file) if file == "~" || file.starts_with("~/") => Ok(source.clone()),
        SecretSource::File(file) if file.starts_with('~') => {
            Err("`~user` is not expanded; write the path in full")
        }
        SecretSource::File(file) => {
            let dir = match &layer.whole {
                Place::Manifest { file: manifest, .. } => root
                    .join(&manifest.workspace_name)
                    .parent()
                    .map(Path::to_path_buf),
                _ => package.manifest_path.parent().map(Path::to_path_buf),
            }
            .unwrap_or_else(|| root.to_path_buf());
            Ok(SecretSource::File(
                normalize(&dir.join(file)).display().to_string(),
            ))
        }
    }
}

fn package_info(package: &Package, root: &Path) -> PackageInfo {
    let manifest_path = package
        .manifest_path
        .strip_prefix(root)
        .unwrap_or(&package.manifest_path)
        .display()
        .to_string();
    PackageInfo {
        name: package.name.clone(),
        version: package.version.to_string(),
        manifest_path,
        description: package.description.clone(),
        license: package.license.clone(),
        repository: package.repository.clone(),
        homepage: package.homepage.clone(),
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system (the path may be a symlink the user wants kept).
pub(super) fn normalize(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Walks every image's `hive:` chain once; a cycle is reported at the `base` of the image it was found from (once
/// per cycle). The chains of the images not caught in a cycle are returned.
fn chains(
    images: &[PlanImage],
    platforms: &BTreeMap<String, Vec<PlatformTarget>>,
    definitions: &Definitions,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Vec<PlatformFacts>> {
    let by_name: BTreeMap<&str, &PlanImage> = images
        .iter()
        .map(|image| (image.name.as_str(), image))
        .collect();
    let mut chains = BTreeMap::new();
    let mut reported = BTreeSet::new();
    for image in images {
        let mut facts = Vec::new();
        for target in &platforms[&image.name] {
            let platform = target.platform.to_string();
            let cycle = match facts::walk(image, &platform, &by_name) {
                Walk::Chain(chain) => {
                    facts.push(PlatformFacts {
                        platform: target.platform.clone(),
                        triple: target.triple.clone(),
                        chain,
                        base_place: target.base_place.clone(),
                    });
                    continue;
                }
                Walk::Broken => break,
                Walk::MissingPlatform { below } => {
                    diags.push(missing_platform(&by_name, image, target, &platform, &below));
                    break;
                }
                Walk::Cycle(cycle) => cycle,
            };
            if !cycle.iter().any(|name| reported.contains(name)) {
                reported.extend(cycle.iter().cloned());
                diags.push(cycle_error(definitions, image, &cycle));
            }
            break;
        }
        if facts.len() == image.per_platform.len() {
            chains.insert(image.name.clone(), facts);
        }
    }
    chains
}

/// An image on `hive:<below>` for a platform `below` is not built for.
fn missing_platform(
    by_name: &BTreeMap<&str, &PlanImage>,
    image: &PlanImage,
    target: &PlatformTarget,
    platform: &str,
    below: &str,
) -> ConfigError {
    let has = by_name
        .get(below)
        .map(|below| below.platforms.join(", "))
        .unwrap_or_default();
    ConfigError::new(
        "base-platform",
        &target.base_place,
        format!(
            "image `{}` is built for {platform} on `hive:{below}`, which has no {platform} image (it has: {has})",
            image.name
        ),
        format!("no {platform}"),
    )
    .help(format!(
        "add {platform} to the platforms of `{below}`, or build `{}` for {has} only",
        image.name
    ))
}

/// The cycle error, at the `base` of the image it was found from.
fn cycle_error(definitions: &Definitions, image: &PlanImage, cycle: &[String]) -> ConfigError {
    let definition = definitions
        .images
        .iter()
        .find(|d| d.name == image.name)
        .expect("resolved images have definitions");
    let layer = definition
        .layers
        .iter()
        .rev()
        .find(|layer| layer.def.base.is_some())
        .expect("a hive: base was set");
    ConfigError::new(
        "base-cycle",
        &layer.place("base"),
        format!("the `hive:` bases form a cycle: {}", cycle.join(" → ")),
        "cycle",
    )
    .help("one image of the cycle must start from `scratch` or a registry image")
}

/// An `--image` that cannot be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SelectError {
    /// No image has that name.
    #[error("no image named `{name}` in the workspace{}", close.as_ref().map(|close| format!("; did you mean `{close}`?")).unwrap_or_default())]
    UnknownImage {
        /// The name asked for.
        name: String,
        /// A name close to it.
        close: Option<String>,
    },
    /// The image is outside the selected packages.
    #[error("image `{image}` belongs to package `{package}`, which is not selected")]
    PackageNotSelected {
        /// The image asked for.
        image: String,
        /// Its package.
        package: String,
    },
    /// `--platform` is not a platform.
    #[error("invalid platform `{platform}` in --platform: {reason}")]
    InvalidPlatform {
        /// As given.
        platform: String,
        /// Why.
        reason: String,
    },
    /// No selected image has the platform of `--platform`.
    #[error("no selected image has platform {platform} (they have: {have})")]
    NoSuchPlatform {
        /// The platform asked for.
        platform: String,
        /// The platforms they have.
        have: String,
    },
    /// No selected image has a platform built for the triple of `--target`.
    #[error(
        "no selected image has a platform built for {triple} (their platforms: {built}); `targets` chooses the \
         triple of a platform"
    )]
    NoSuchTarget {
        /// The triple asked for.
        triple: String,
        /// Each platform with its triple.
        built: String,
    },
    /// `--platform` and `--target` together leave nothing.
    #[error(
        "no platform of the selected images is both one of --platform and built for one of --target"
    )]
    NothingLeft,
}

/// The selected images, plus every image a selected one is built on (`hive:` bases, a Dockerfile's
/// `FROM hive-<name>`), marked unselected; each
/// with only the platforms `--platform` and `--target` leave (and a base with those its images need).
pub(crate) fn select(
    assembled: Assembled,
    definitions: &Definitions,
    wanted: &Wanted<'_>,
    packages_given: bool,
) -> Result<Assembled, SelectError> {
    let Assembled {
        mut images,
        mut facts,
        missing_triples,
    } = assembled;
    let workspace = &definitions.workspace;
    let selected_packages: BTreeSet<&str> = workspace
        .selected
        .iter()
        .map(|index| workspace.packages[*index].name.as_str())
        .collect();
    for wanted in wanted.images {
        let Some(image) = images.iter().find(|image| image.name == *wanted) else {
            let close = did_you_mean(wanted, images.iter().map(|image| image.name.as_str()));
            return Err(SelectError::UnknownImage {
                name: wanted.clone(),
                close: close.map(str::to_owned),
            });
        };
        if packages_given && !selected_packages.contains(image.package.name.as_str()) {
            return Err(SelectError::PackageNotSelected {
                image: wanted.clone(),
                package: image.package.name.clone(),
            });
        }
    }
    for image in &mut images {
        image.selected = if wanted.images.is_empty() {
            selected_packages.contains(image.package.name.as_str())
        } else {
            wanted.images.contains(&image.name)
        };
    }
    let kept = kept_platforms(&images, &facts, wanted)?;
    for image in &mut images {
        image.selected = image.selected && kept.contains_key(&image.name);
    }
    // A selected image needs every image of its chain, on the platforms it is built for.
    let mut needed: BTreeMap<String, BTreeSet<Platform>> = BTreeMap::new();
    for (name, platforms) in &kept {
        for on in &facts[name].platforms {
            if platforms.contains(&on.platform) {
                for below in &on.chain.images {
                    needed
                        .entry(below.clone())
                        .or_default()
                        .insert(on.platform.clone());
                }
            }
        }
    }
    // A Dockerfile image also needs the images its `FROM hive-<name>` lines name.
    super::dockerfile::add_from_images(&mut needed, &images, &facts);
    images.retain(|image| needed.contains_key(&image.name));
    facts.retain(|name, _| needed.contains_key(name));
    for image in &mut images {
        let platforms = &needed[&image.name];
        narrow(image, platforms);
        if let Some(image_facts) = facts.get_mut(&image.name) {
            image_facts
                .platforms
                .retain(|on| platforms.contains(&on.platform));
        }
    }
    Ok(Assembled {
        images,
        facts,
        missing_triples,
    })
}

/// What `--image`, `--platform` and `--target` ask for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted<'a> {
    pub(crate) images: &'a [String],
    pub(crate) platforms: &'a [String],
    pub(crate) targets: &'a [String],
}

/// The platforms of each selected image that `--platform` and `--target` leave; images left with none are out.
fn kept_platforms(
    images: &[PlanImage],
    facts: &BTreeMap<String, ImageFacts>,
    wanted: &Wanted<'_>,
) -> Result<BTreeMap<String, BTreeSet<Platform>>, SelectError> {
    let mut platforms = Vec::new();
    for text in wanted.platforms {
        let platform = Platform::parse(text).map_err(|why| SelectError::InvalidPlatform {
            platform: text.clone(),
            reason: why.reason,
        })?;
        platforms.push(platform);
    }
    let selected: Vec<&PlanImage> = images.iter().filter(|image| image.selected).collect();
    let on = |image: &PlanImage| facts[&image.name].platforms.clone();
    let all: BTreeSet<(Platform, String)> = (selected.iter())
        .flat_map(|image| on(image))
        .map(|facts| (facts.platform, facts.triple))
        .collect();
    let have = || {
        let names: BTreeSet<String> = all.iter().map(|(p, _)| p.to_string()).collect();
        names.into_iter().collect::<Vec<_>>().join(", ")
    };
    for platform in &platforms {
        if !all.iter().any(|(p, _)| p == platform) {
            return Err(SelectError::NoSuchPlatform {
                platform: platform.to_string(),
                have: have(),
            });
        }
    }
    for triple in wanted.targets {
        if !all.iter().any(|(_, t)| t == triple) {
            let built = all
                .iter()
                .map(|(p, t)| format!("{p} → {t}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(SelectError::NoSuchTarget {
                triple: triple.clone(),
                built,
            });
        }
    }
    let mut kept = BTreeMap::new();
    for image in &selected {
        let left: BTreeSet<Platform> = on(image)
            .into_iter()
            .filter(|facts| platforms.is_empty() || platforms.contains(&facts.platform))
            .filter(|facts| wanted.targets.is_empty() || wanted.targets.contains(&facts.triple))
            .map(|facts| facts.platform)
            .collect();
        if !left.is_empty() {
            kept.insert(image.name.clone(), left);
        }
    }
    if kept.is_empty() && !selected.is_empty() {
        return Err(SelectError::NothingLeft);
    }
    Ok(kept)
}

/// Leaves an image only `platforms`; its own values are those of its (new) first platform.
fn narrow(image: &mut PlanImage, platforms: &BTreeSet<Platform>) {
    let keep = |text: &String| Platform::parse(text).is_ok_and(|p| platforms.contains(&p));
    image.platforms.retain(keep);
    image.per_platform.retain(|plan| keep(&plan.platform));
    if let Some(first) = image.platforms.first().cloned() {
        facts::take_platform_values(image, &first);
    }
}

/// The image graph of the plan's images: an edge from each `hive:` base, and from each image a Dockerfile names in
/// `FROM hive-<name>`, to the image built on it; sorted.
fn edges(images: &[PlanImage]) -> Vec<Edge> {
    let mut edges: Vec<Edge> = images
        .iter()
        .flat_map(|image| {
            let hive_base = match &image.base {
                Base::Hive { image: base } => Some(base.clone()),
                _ => None,
            };
            let from_lines = image.dockerfile.iter().flat_map(|d| d.hive_images.clone());
            hive_base.into_iter().chain(from_lines).map(|from| Edge {
                from,
                to: image.name.clone(),
            })
        })
        .collect();
    edges.sort();
    edges.dedup();
    edges
}

/// The plan of the selected images, with their facts.
pub(crate) fn plan(
    assembled: Assembled,
    definitions: &Definitions,
    profile: &str,
    git: GitFacts,
) -> Resolved {
    Resolved {
        plan: Plan {
            format_version: hive_build::plan::FORMAT_VERSION,
            workspace_root: definitions.workspace.root.display().to_string(),
            profile: profile.to_owned(),
            edges: edges(&assembled.images),
            images: assembled.images,
        },
        image_facts: assembled.facts,
        git,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{SourceFile, Workspace};

    fn resolve_text(
        text: &str,
        build_script: Vec<(&str, ImageDef)>,
    ) -> (Vec<PlanImage>, Vec<String>) {
        let (assembled, _, errors) = assemble_text(text, build_script);
        (assembled.images, errors)
    }

    /// Resolves the images of a one-package workspace whose manifest is `text`, plus optional build-script layers.
    fn assemble_text(
        text: &str,
        build_script: Vec<(&str, ImageDef)>,
    ) -> (Assembled, Definitions, Vec<String>) {
        assemble_at(Path::new("/w"), text, build_script)
    }

    /// [`assemble_text`] for a workspace (and package) at `root`.
    fn assemble_at(
        root: &Path,
        text: &str,
        build_script: Vec<(&str, ImageDef)>,
    ) -> (Assembled, Definitions, Vec<String>) {
        let file = Arc::new(SourceFile::new(
            "Cargo.toml".into(),
            "Cargo.toml".into(),
            text.into(),
        ));
        let mut diags = Diagnostics::default();
        let manifest = crate::config::read_manifest(&file, true, true, &mut diags);
        let package = Package {
            id: "app".into(),
            name: "app".into(),
            version: cargo_metadata::semver::Version::new(1, 2, 3),
            manifest_path: root.join("Cargo.toml"),
            description: Some("An app.".into()),
            license: None,
            repository: None,
            homepage: None,
            bins: vec!["app".into(), "tool".into()],
            uses_hive_build: false,
        };
        let package_hive = manifest.package.unwrap();
        let mut images: Vec<ImageDefinition> = package_hive
            .images
            .into_iter()
            .flat_map(|image| {
                let layers: Vec<Layer> = manifest
                    .workspace
                    .iter()
                    .cloned()
                    .chain([package_hive.defaults.clone(), image.layer])
                    .collect();
                let variants =
                    crate::config::variant_definitions(&image.name, 0, &layers, image.variants);
                std::iter::once(ImageDefinition {
                    name: image.name,
                    package: 0,
                    declared: image.name_place,
                    layers,
                    variant: None,
                })
                .chain(variants)
            })
            .collect();
        let mut runs = BTreeSet::new();
        for (name, def) in build_script {
            // `name@triple`: the build script's run for that triple; the host's when none is given.
            let (name, triple) = name
                .split_once('@')
                .unwrap_or((name, "x86_64-unknown-linux-gnu"));
            runs.insert(triple.to_owned());
            let image = images.iter_mut().find(|image| image.name == name).unwrap();
            image
                .layers
                .push(Layer::from_build_script("app", name, def, triple));
        }
        let definitions = Definitions {
            workspace: Workspace {
                root: root.to_path_buf(),
                root_manifest: root.join("Cargo.toml"),
                target_directory: root.join("target"),
                packages: vec![package],
                selected: vec![0],
            },
            images,
            connection: Default::default(),
            workspace_defaults: None,
            package_defaults: vec![None],
            script_runs: if runs.is_empty() {
                BTreeMap::new()
            } else {
                BTreeMap::from([(0, runs)])
            },
        };
        let git = GitFacts::fixed(
            Some("0123456789abcdef0123456789abcdef01234567"),
            Some("main"),
            None,
        );
        let context = Context {
            profile: "release",
            git: &git,
            env: &|_| None,
        };
        let assembled = resolve_all(&definitions, &context, &mut diags);
        (assembled, definitions, diags.messages())
    }

    #[test]
    fn facts_carry_typed_platforms_and_chains_that_selection_follows() {
        let (assembled, definitions, errors) = assemble_text(
            r#"
[package.metadata.hive.images.os]
bin = "tool"
base = "localhost:5000/hive/busybox:latest"
platforms = ["linux/arm/v7"]

[package.metadata.hive.images.runtime]
bin = "tool"
base = "hive:os"
platforms = ["linux/arm/v7"]

[package.metadata.hive.images.app]
bin = "app"
base = "hive:runtime"
platforms = ["linux/arm/v7"]
"#,
            vec![],
        );
        assert_eq!(errors, Vec::<String>::new());
        let os = &assembled.facts["os"].platforms[0];
        assert_eq!(
            (os.platform.architecture(), os.platform.variant()),
            ("arm", Some("v7"))
        );
        assert_eq!(os.triple, "armv7-unknown-linux-gnueabihf");
        let app = &assembled.facts["app"].platforms[0];
        assert_eq!(app.chain.images, ["os", "runtime", "app"]);
        assert_eq!(
            app.chain.root,
            Base::Image {
                reference: "localhost:5000/hive/busybox:latest".into()
            }
        );
        assert!(os.chain.is_direct());
        // `--image app` pulls in its whole chain, unselected; `--image runtime` leaves `app` out.
        let wanted = Wanted {
            images: &["runtime".to_owned()],
            platforms: &[],
            targets: &[],
        };
        let selected = select(assembled, &definitions, &wanted, false).unwrap();
        let names: Vec<(&str, bool)> = selected
            .images
            .iter()
            .map(|image| (image.name.as_str(), image.selected))
            .collect();
        assert_eq!(names, [("os", false), ("runtime", true)]);
        assert_eq!(selected.facts.keys().collect::<Vec<_>>(), ["os", "runtime"]);
    }

    #[test]
    fn a_cycle_is_reported_once_and_has_no_chain() {
        let (assembled, _, errors) = assemble_text(
            r#"
[package.metadata.hive.images.a]
bin = "app"
base = "hive:b"

[package.metadata.hive.images.b]
bin = "app"
base = "hive:a"
"#,
            vec![],
        );
        assert_eq!(
            errors,
            ["base-cycle: the `hive:` bases form a cycle: a → b → a"]
        );
        assert!(assembled.facts.is_empty());
    }

    const VARIANTS: &str = r#"
[workspace.metadata.hive]
registry = "localhost:5000/hive"

[package.metadata.hive.images.app]
bin = "app"
base = "scratch"
tags = ["{version}", "latest"]
env = { RUST_LOG = "info", PORT = "80" }
cmd = ["serve"]

[package.metadata.hive.images.app.variants.debug]
base = "localhost:5000/hive/busybox"
env = { RUST_LOG = "debug" }

[package.metadata.hive.images.app.variants.musl]
tag-suffix = "-static"
targets = { "linux/amd64" = "x86_64-unknown-linux-musl" }

[package.metadata.hive.images.app.variants.pinned]
tags = ["edge"]
repository = "localhost:5000/other/app"

[package.metadata.hive.images.tool]
bin = "tool"
base = "hive:app@debug"
"#;

    #[test]
    fn a_variant_is_its_image_with_the_variant_table_on_top() {
        let (images, errors) = resolve_text(VARIANTS, vec![]);
        assert_eq!(errors, Vec::<String>::new());
        let names: Vec<&str> = images.iter().map(|image| image.name.as_str()).collect();
        assert_eq!(
            names,
            ["app", "app@debug", "app@musl", "app@pinned", "tool"]
        );
        let image = |name: &str| images.iter().find(|image| image.name == name).unwrap();
        let debug = image("app@debug");
        // Maps merge, single values replace, everything else is the image's.
        assert_eq!(debug.config.env["RUST_LOG"], "debug");
        assert_eq!(debug.config.env["PORT"], "80");
        assert_eq!(debug.config.cmd, ["serve"]);
        assert_eq!(
            debug.base,
            Base::Image {
                reference: "localhost:5000/hive/busybox:latest".into()
            }
        );
        assert_eq!(
            debug.references,
            [
                "localhost:5000/hive/app:1.2.3-debug",
                "localhost:5000/hive/app:latest-debug"
            ]
        );
        let variant = debug.variant.as_ref().unwrap();
        assert_eq!(
            (variant.image.as_str(), variant.name.as_str()),
            ("app", "debug")
        );
        assert_eq!(variant.tag_suffix.as_deref(), Some("-debug"));
        // Origins point at the variant's table where it set the value, at the image's elsewhere.
        let table = |key: &str| match &debug.origins[key] {
            Origin::Manifest { table, .. } => table.clone(),
            other => panic!("{key} from {other}"),
        };
        assert_eq!(
            table("base"),
            "package.metadata.hive.images.app.variants.debug"
        );
        assert_eq!(
            table("env.RUST_LOG"),
            "package.metadata.hive.images.app.variants.debug"
        );
        assert_eq!(table("env.PORT"), "package.metadata.hive.images.app");
        assert_eq!(image("app").tags, ["1.2.3", "latest"]);
        assert_eq!(image("app@musl").tags, ["1.2.3-static", "latest-static"]);
        // A variant's own tags are used as written; so is its own repository.
        let pinned = image("app@pinned");
        assert_eq!(pinned.references, ["localhost:5000/other/app:edge"]);
        assert_eq!(pinned.variant.as_ref().unwrap().tag_suffix, None);
    }

    #[test]
    fn a_variant_is_a_base_and_is_selected_by_its_own_name() {
        let (assembled, definitions, errors) = assemble_text(VARIANTS, vec![]);
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(
            assembled.facts["tool"].platforms[0].chain.images,
            ["app@debug", "tool"]
        );
        let names = |wanted: &[&str]| {
            let (assembled, definitions, _) = assemble_text(VARIANTS, vec![]);
            let wanted: Vec<String> = wanted.iter().map(|name| (*name).to_owned()).collect();
            let wanted = Wanted {
                images: &wanted,
                platforms: &[],
                targets: &[],
            };
            let selected = select(assembled, &definitions, &wanted, false).unwrap();
            selected
                .images
                .iter()
                .map(|image| (image.name.clone(), image.selected))
                .collect::<Vec<_>>()
        };
        // `--image app` is the image alone, not its variants.
        assert_eq!(names(&["app"]), [("app".to_owned(), true)]);
        assert_eq!(
            names(&["tool"]),
            [("app@debug".to_owned(), false), ("tool".to_owned(), true)]
        );
        let git = GitFacts::fixed(None, None, None);
        let resolved = plan(assembled, &definitions, "release", git);
        assert_eq!(
            resolved.plan.edges,
            [hive_build::plan::Edge {
                from: "app@debug".into(),
                to: "tool".into()
            }]
        );
    }

    #[test]
    fn a_variant_with_aliases_is_refused_until_it_turns_them_off() {
        let text = |variant: &str| {
            format!(
                "[package.metadata.hive.images.app]\nbin = \"app\"\naliases = true\n\n\
                 [package.metadata.hive.images.app.variants.debug]\n{variant}\n"
            )
        };
        let (_, errors) = resolve_text(&text(""), vec![]);
        assert_eq!(
            errors,
            ["variant-aliases: variant `app@debug` would take the alias tags of image `app`"]
        );
        let (images, errors) = resolve_text(&text("aliases = false"), vec![]);
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(
            images
                .iter()
                .map(|i| (i.name.as_str(), i.aliases))
                .collect::<Vec<_>>(),
            [("app", true), ("app@debug", false)]
        );
    }

    #[test]
    fn a_tag_suffix_that_makes_a_bad_tag_is_shown_at_the_suffix() {
        let (_, errors) = resolve_text(
            r#"
[package.metadata.hive.images.app]
bin = "app"
tags = ["{version}"]

[package.metadata.hive.images.app.variants.debug]
tag-suffix = "+debug"
"#,
            vec![],
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "invalid-tag: invalid tag `1.2.3+debug` (from `{version}` with tag suffix `+debug`)"
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn select_errors_are_typed() {
        let (assembled, definitions, _) = assemble_text(
            "[package.metadata.hive.images.app]\nbin = \"app\"\n",
            vec![],
        );
        let wanted = Wanted {
            images: &["ap".to_owned()],
            platforms: &[],
            targets: &[],
        };
        let err = select(assembled, &definitions, &wanted, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no image named `ap` in the workspace; did you mean `app`?"
        );
    }

    const TWO_PLATFORMS: &str = r#"
[package.metadata.hive.images.app]
bin = "app"
base = "localhost:5000/hive/glibc"
platforms = ["linux/amd64", "linux/arm64"]
targets = { "linux/arm64" = "aarch64-unknown-linux-musl" }

[package.metadata.hive.images.tool]
bin = "tool"
base = "hive:app"
platforms = ["linux/arm64"]
targets = { "linux/arm64" = "aarch64-unknown-linux-musl" }
"#;

    #[test]
    fn each_platform_has_its_triple_and_its_build_script_run() {
        let scratch = ImageDef {
            base: Some("scratch".into()),
            env: [("LIBC".to_owned(), "musl".to_owned())].into(),
            ..ImageDef::default()
        };
        let glibc = ImageDef {
            env: [("LIBC".to_owned(), "gnu".to_owned())].into(),
            ..ImageDef::default()
        };
        let (assembled, definitions, errors) = assemble_text(
            TWO_PLATFORMS,
            vec![
                ("app@aarch64-unknown-linux-musl", scratch),
                ("app@x86_64-unknown-linux-gnu", glibc),
            ],
        );
        assert_eq!(errors, Vec::<String>::new());
        let app = assembled.images.iter().find(|i| i.name == "app").unwrap();
        let per: Vec<(&str, &str, &Base, &str)> = (app.per_platform.iter())
            .map(|p| {
                (
                    &p.platform[..],
                    &p.target[..],
                    &p.base,
                    &p.config.env["LIBC"][..],
                )
            })
            .collect();
        let glibc = Base::Image {
            reference: "localhost:5000/hive/glibc:latest".into(),
        };
        assert_eq!(
            per,
            [
                ("linux/amd64", "x86_64-unknown-linux-gnu", &glibc, "gnu"),
                (
                    "linux/arm64",
                    "aarch64-unknown-linux-musl",
                    &Base::Scratch,
                    "musl"
                ),
            ]
        );
        assert!(matches!(
            app.per_platform[1].origins["target"],
            Origin::Manifest { .. }
        ));
        assert_eq!(
            app.base, glibc,
            "the image's own values are its first platform's"
        );
        // `tool` is on `hive:app` for arm64 only: its chain ends at scratch there.
        let tool = &assembled.facts["tool"].platforms;
        assert_eq!(tool.len(), 1);
        assert_eq!(tool[0].chain.root, Base::Scratch);

        // `--target` selects the platforms built for that triple; bases follow.
        let wanted = Wanted {
            images: &[],
            platforms: &[],
            targets: &["aarch64-unknown-linux-musl".to_owned()],
        };
        let selected = select(assembled, &definitions, &wanted, false).unwrap();
        let app = selected.images.iter().find(|i| i.name == "app").unwrap();
        assert_eq!(app.platforms, ["linux/arm64"]);
        assert_eq!(app.base, Base::Scratch);
        assert!(
            selected
                .images
                .iter()
                .find(|i| i.name == "tool")
                .unwrap()
                .selected
        );
    }

    #[test]
    fn platform_selection_errors_list_what_there_is() {
        let select_with = |platforms: &[&str], targets: &[&str]| {
            let (assembled, definitions, _) = assemble_text(
                TWO_PLATFORMS,
                vec![
                    ("app@aarch64-unknown-linux-musl", ImageDef::default()),
                    ("app@x86_64-unknown-linux-gnu", ImageDef::default()),
                ],
            );
            let platforms: Vec<String> = platforms.iter().map(|p| p.to_string()).collect();
            let targets: Vec<String> = targets.iter().map(|p| p.to_string()).collect();
            let wanted = Wanted {
                images: &[],
                platforms: &platforms,
                targets: &targets,
            };
            select(assembled, &definitions, &wanted, false).map(|selected| {
                (selected.images.into_iter())
                    .map(|image| (image.name, image.platforms, image.selected))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            select_with(&["linux/s390x"], &[]).unwrap_err().to_string(),
            "no selected image has platform linux/s390x (they have: linux/amd64, linux/arm64)"
        );
        assert_eq!(
            select_with(&[], &["x86_64-unknown-linux-musl"])
                .unwrap_err()
                .to_string(),
            "no selected image has a platform built for x86_64-unknown-linux-musl (their platforms: linux/amd64 → \
             x86_64-unknown-linux-gnu, linux/arm64 → aarch64-unknown-linux-musl); `targets` chooses the triple of \
             a platform"
        );
        assert!(select_with(&["linux/x86_64"], &[]).is_err());
        // `tool` has no amd64: it is left out, not an error.
        assert_eq!(
            select_with(&["linux/amd64"], &[]).unwrap(),
            [("app".to_owned(), vec!["linux/amd64".to_owned()], true)]
        );
    }

    #[test]
    fn triples_and_build_script_runs_are_checked() {
        let (_, errors) = resolve_text(
            r#"
[package.metadata.hive.images.app]
bin = "app"
platforms = ["linux/amd64", "linux/arm64"]
targets = { "linux/amd64" = "aarch64-unknown-linux-musl", "linux/arm64" = "aarch64-unknown-linux-gnux", "linux" = "x" }
"#,
            vec![],
        );
        assert_eq!(
            errors,
            [
                "invalid-platform: `targets` key `linux` is not a platform: a platform is `os/arch` or \
                 `os/arch/variant`",
                "invalid-target: invalid target for linux/amd64: target `aarch64-unknown-linux-musl` does not \
                 build for linux/amd64: it is a linux/arm64 target",
                "invalid-target: invalid target for linux/arm64: unknown target triple `aarch64-unknown-linux-gnux`",
            ]
        );
        let tags = |tag: &str| ImageDef {
            tags: Some(vec![tag.into()]),
            ..ImageDef::default()
        };
        let (_, errors) = resolve_text(
            TWO_PLATFORMS,
            vec![
                ("app@aarch64-unknown-linux-musl", tags("arm")),
                ("app@x86_64-unknown-linux-gnu", tags("amd")),
            ],
        );
        assert_eq!(
            errors,
            [
                "build-script-disagrees: the build script gives tags [\"arm\"] when cargo runs it for \
                 aarch64-unknown-linux-musl but [\"amd\"] when it runs for x86_64-unknown-linux-gnu (image `app`, \
                 set by the build script of package `app`)"
            ]
        );
    }

    #[test]
    fn run_steps_replace_across_layers_with_a_place_each() {
        let (images, errors) = resolve_text(
            r#"
[workspace.metadata.hive]
run = ["from the workspace"]

[package.metadata.hive.images.app]
bin = "app"
run = ["apt-get update", { command = ["true"], cache = [{ target = "/c" }] }]

[package.metadata.hive.images.other]
bin = "app"
"#,
            vec![],
        );
        assert_eq!(errors, Vec::<String>::new());
        let app = images.iter().find(|image| image.name == "app").unwrap();
        assert_eq!(app.run.len(), 2);
        assert_eq!(app.run[0].args, ["/bin/sh", "-c", "apt-get update"]);
        assert!(app.run[1].cache[0].id.starts_with("hive-"));
        let line = |key: &str| match &app.origins[key] {
            Origin::Manifest { line, column, .. } => (*line, *column),
            other => panic!("{other:?}"),
        };
        assert_eq!(line("run[0]"), (7, 8));
        assert_eq!(line("run[1]"), (7, 26));
        let other = images.iter().find(|image| image.name == "other").unwrap();
        assert_eq!(other.run[0].args[2], "from the workspace");
    }

    #[test]
    fn maps_merge_and_lists_replace_across_layers() {
        let build_script = ImageDef {
            tags: Some(vec!["{git.short_sha}".into()]),
            env: [("FROM_BUILD_RS".to_owned(), "1".to_owned())].into(),
            ..ImageDef::default()
        };
        let (images, errors) = resolve_text(
            r#"
[workspace.metadata.hive]
registry = "registry.example.com/team"
platforms = ["linux/amd64", "linux/arm64"]
env = { A = "workspace", B = "workspace" }
labels = { "org.opencontainers.image.vendor" = "Acme" }

[package.metadata.hive]
env = { B = "package", C = "package" }
tags = ["{version}", "{profile}"]

[package.metadata.hive.images.app]
bin = "app"
env = { C = "image" }
platforms = ["linux/arm64"]
"#,
            vec![("app@aarch64-unknown-linux-gnu", build_script)],
        );
        assert_eq!(errors, Vec::<String>::new());
        let image = &images[0];
        let env: Vec<(&str, &str)> = image
            .config
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("A", "workspace"),
                ("B", "package"),
                ("C", "image"),
                ("FROM_BUILD_RS", "1")
            ]
        );
        // build.rs wins over the package's tags; the image's platforms replace the workspace's.
        assert_eq!(image.references, ["registry.example.com/team/app:0123456"]);
        assert_eq!(image.platforms, ["linux/arm64"]);
        assert_eq!(
            image.origins["tags"],
            Origin::BuildScript {
                package: "app".into()
            }
        );
        let Origin::Manifest { table, line, .. } = &image.origins["env.B"] else {
            panic!("manifest origin")
        };
        assert_eq!((table.as_str(), *line), ("package.metadata.hive", 9));
        assert_eq!(
            image.config.labels["org.opencontainers.image.vendor"],
            "Acme"
        );
        assert_eq!(
            image.config.labels["org.opencontainers.image.description"],
            "An app."
        );
        assert_eq!(image.config.entrypoint, ["/usr/local/bin/app"]);
        assert_eq!(
            image.base,
            Base::Image {
                reference: "gcr.io/distroless/cc-debian12:latest".into()
            }
        );
    }

    #[test]
    fn secrets_merge_by_id_and_files_are_relative_to_their_manifest() {
        let manifest = r#"
[workspace.metadata.hive]
secrets = { token = { env = "WS_TOKEN" }, netrc = { file = "~/.netrc" } }

[package.metadata.hive.images.app]
bin = "app"
secrets = { token = { env = "APP_TOKEN" }, key = { file = "keys/../deploy.key" } }
"#;
        let (images, errors) = resolve_text(manifest, vec![]);
        assert_eq!(errors, Vec::<String>::new());
        let secrets: Vec<(&str, String)> = (images[0].secrets.iter())
            .map(|(id, source)| (id.as_str(), source.to_string()))
            .collect();
        assert_eq!(
            secrets,
            [
                ("key", "file /w/deploy.key".to_owned()),
                ("netrc", "file ~/.netrc".to_owned()),
                ("token", "env APP_TOKEN".to_owned()),
            ]
        );
        let Origin::Manifest { table, .. } = &images[0].origins["secrets.netrc"] else {
            panic!("manifest origin")
        };
        assert_eq!(table, "workspace.metadata.hive");
    }

    #[test]
    fn bad_secrets_are_each_reported() {
        let manifest = r#"
[package.metadata.hive.images.app]
bin = "app"
secrets = { "a/b" = { env = "A" }, both = { env = "B", file = "b" }, none = {}, typo = { envv = "C" }, home = { file = "~root/x" }, flat = "D" }
"#;
        let (_, errors) = resolve_text(manifest, vec![]);
        assert_eq!(
            errors,
            [
                "invalid-secret: the secret `secrets.both` has both `env` and `file`",
                "wrong-type: `secrets.flat` must be a table (`{ env = \"NAME\" }` or `{ file = \"path\" }`), \
                 not a string",
                "invalid-secret: the secret `secrets.none` has no source",
                "unknown-key: unknown key `envv` in the secret `secrets.typo`",
                "invalid-secret: invalid secret id `a/b`: it has a character other than letters, digits, `-`, \
                 `_` and `.`",
                "invalid-secret: invalid source of the secret `home`: `~user` is not expanded; write the path in \
                 full",
            ]
        );
    }

    #[test]
    fn compression_takes_the_most_specific_layer_and_a_level_it_has() {
        let manifest = r#"
[workspace.metadata.hive]
compression = "zstd"
compression-level = 19

[package.metadata.hive.images.app]
bin = "app"

[package.metadata.hive.images.plain]
bin = "app"
compression = "gzip"
compression-level = 9

[package.metadata.hive.images.default]
bin = "app"
compression = "gzip"
"#;
        let (images, errors) = resolve_text(manifest, vec![]);
        assert_eq!(errors, Vec::<String>::new());
        let got: Vec<_> = (images.iter())
            .map(|image| {
                (
                    image.name.as_str(),
                    image.compression,
                    image.compression_level,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("app", Compression::Zstd, Some(19)),
                // The workspace's level is zstd's; this image's gzip takes it only where it is one of gzip's.
                ("default", Compression::Gzip, None),
                ("plain", Compression::Gzip, Some(9)),
            ]
        );
    }

    #[test]
    fn a_level_the_compression_does_not_have_is_refused() {
        let manifest = r#"
[package.metadata.hive.images.app]
bin = "app"
compression = "uncompressed"
compression-level = 3

[package.metadata.hive.images.tool]
bin = "app"
compression-level = 12
"#;
        let (_, errors) = resolve_text(manifest, vec![]);
        assert_eq!(
            errors,
            [
                "invalid-compression-level: image `app` is uncompressed: it takes no level",
                "invalid-compression-level: gzip has no level 12: image `tool` is compressed with gzip",
            ]
        );
    }

    #[test]
    fn aliases_and_sbom_take_the_most_specific_layer() {
        let manifest = r#"
[workspace.metadata.hive]
aliases = true
sbom = true

[package.metadata.hive]
sbom = false

[package.metadata.hive.images.app]
bin = "app"

[package.metadata.hive.images.tool]
bin = "tool"
aliases = false
"#;
        let (images, errors) = resolve_text(manifest, vec![]);
        assert_eq!(errors, Vec::<String>::new());
        let flags = |image: &PlanImage| (image.name.clone(), image.aliases, image.sbom);
        let got: Vec<_> = images.iter().map(flags).collect();
        assert_eq!(
            got,
            [("app".into(), true, false), ("tool".into(), false, false)]
        );
        let line = |image: &PlanImage, key: &str| match &image.origins[key] {
            Origin::Manifest { table, line, .. } => (table.clone(), *line),
            other => panic!("{key} from {other:?}"),
        };
        assert_eq!(
            line(&images[0], "aliases"),
            ("workspace.metadata.hive".into(), 3)
        );
        assert_eq!(
            line(&images[0], "sbom"),
            ("package.metadata.hive".into(), 7)
        );
        assert_eq!(
            line(&images[1], "aliases"),
            ("package.metadata.hive.images.tool".into(), 14)
        );
        // A build script's value wins over the manifest's.
        let build_script = ImageDef {
            sbom: Some(true),
            ..ImageDef::default()
        };
        let (images, errors) = resolve_text(manifest, vec![("app", build_script)]);
        assert_eq!(errors, Vec::<String>::new());
        assert!(images[0].sbom);
        assert_eq!(
            images[0].origins["sbom"],
            Origin::BuildScript {
                package: "app".into()
            }
        );
    }

    #[test]
    fn build_script_runs_must_agree_on_aliases_and_sbom() {
        let sbom = |on: bool| ImageDef {
            sbom: Some(on),
            ..ImageDef::default()
        };
        let (_, errors) = resolve_text(
            TWO_PLATFORMS,
            vec![
                ("app@aarch64-unknown-linux-musl", sbom(true)),
                ("app@x86_64-unknown-linux-gnu", sbom(false)),
            ],
        );
        assert_eq!(
            errors,
            [
                "build-script-disagrees: the build script gives sbom true when cargo runs it for \
                 aarch64-unknown-linux-musl but false when it runs for x86_64-unknown-linux-gnu (image `app`, \
                 set by the build script of package `app`)"
            ]
        );
    }

    #[test]
    fn unset_aliases_and_sbom_are_off_without_an_origin() {
        let (images, errors) = resolve_text(
            "[package.metadata.hive.images.app]\nbin = \"app\"\n",
            vec![],
        );
        assert_eq!(errors, Vec::<String>::new());
        assert!(!images[0].aliases && !images[0].sbom);
        assert!(!images[0].origins.contains_key("aliases"));
        assert!(!images[0].origins.contains_key("sbom"));
    }

    #[test]
    fn defaults_and_ambiguous_bins() {
        let (images, errors) = resolve_text("[package.metadata.hive.images.app]\n", vec![]);
        assert!(images.is_empty());
        assert_eq!(
            errors,
            ["ambiguous-bin: image `app` does not say which binary of package `app` to package"]
        );
        let (images, errors) = resolve_text(
            "[package.metadata.hive.images.app]\nbin = \"tool\"\n",
            vec![],
        );
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(images[0].references, ["app:1.2.3", "app:latest"]);
        assert_eq!(images[0].platforms, ["linux/amd64"]);
        assert_eq!(images[0].binary.path, "/usr/local/bin/tool");
    }

    /// A workspace directory with these files (path, text), for the Dockerfile checks that read the disk.
    fn workspace_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    const DOCKERFILE_IMAGES: &str = r#"
[workspace.metadata.hive]
base = "localhost:5000/hive/glibc"
env = { FROM_WORKSPACE = "1" }
build-args = { MODE = "release", SHARED = "yes" }

[package.metadata.hive.images.runtime]
bin = "app"
base = "scratch"

[package.metadata.hive.images.api]
bin = "app"
dockerfile = "docker/api.Dockerfile"
context = "docker"
target = "Runtime"
build-args = { MODE = "debug" }
labels = { team = "core" }

[package.metadata.hive.images.app]
bin = "app"
base = "hive:api"
"#;

    const API_DOCKERFILE: &str = "# syntax=docker/dockerfile:1\n\
        FROM --platform=$BUILDPLATFORM hive-runtime AS build\n\
        FROM scratch AS runtime\n\
        COPY --from=build /usr/local/bin/app /app\n";

    #[test]
    fn a_dockerfile_image_is_resolved_and_is_a_hive_base() {
        let dir = workspace_with(&[("docker/api.Dockerfile", API_DOCKERFILE)]);
        let root = dir.path();
        let (assembled, definitions, errors) = assemble_at(root, DOCKERFILE_IMAGES, vec![]);
        assert_eq!(errors, Vec::<String>::new());
        let api = assembled.images.iter().find(|i| i.name == "api").unwrap();
        assert_eq!(api.base, Base::Dockerfile);
        let dockerfile = api.dockerfile.as_ref().unwrap();
        assert_eq!(
            dockerfile.dockerfile,
            root.join("docker/api.Dockerfile").display().to_string()
        );
        assert_eq!(
            dockerfile.context,
            root.join("docker").display().to_string()
        );
        assert_eq!(dockerfile.target.as_deref(), Some("Runtime"));
        assert_eq!(
            dockerfile.build_args,
            BTreeMap::from([
                ("MODE".to_owned(), "debug".to_owned()),
                ("SHARED".to_owned(), "yes".to_owned())
            ])
        );
        assert_eq!(dockerfile.hive_images, ["runtime"]);
        // Inherited base and env are not used; the Dockerfile makes the config but for labels.
        assert!(api.config.env.is_empty() && api.config.entrypoint.is_empty());
        assert_eq!(api.config.labels["team"], "core");
        assert!(api.files.is_empty() && api.run.is_empty());
        assert_eq!(api.origins["build-args.SHARED"].to_string(), "Cargo.toml:5");
        assert_eq!(api.origins["context"].to_string(), "Cargo.toml:14");
        // `hive:api` is accepted and its chain ends at the Dockerfile.
        let chain = &assembled.facts["app"].platforms[0].chain;
        assert_eq!(
            (&chain.images[..], &chain.root),
            (&["api".to_owned(), "app".to_owned()][..], &Base::Dockerfile)
        );
        let wanted = vec!["app".to_owned()];
        let wanted = Wanted {
            images: &wanted,
            platforms: &[],
            targets: &[],
        };
        let selected = select(assembled, &definitions, &wanted, false).unwrap();
        let names: Vec<(&str, bool)> = (selected.images.iter())
            .map(|image| (image.name.as_str(), image.selected))
            .collect();
        assert_eq!(names, [("api", false), ("app", true), ("runtime", false)]);
        let resolved = plan(
            selected,
            &definitions,
            "release",
            GitFacts::fixed(None, None, None),
        );
        let edges: Vec<(&str, &str)> = (resolved.plan.edges.iter())
            .map(|edge| (edge.from.as_str(), edge.to.as_str()))
            .collect();
        assert_eq!(edges, [("api", "app"), ("runtime", "api")]);
    }

    #[test]
    fn what_a_dockerfile_replaces_is_refused_where_the_image_sets_it() {
        let dir = workspace_with(&[("api.Dockerfile", "FROM hive-runtme AS base\n")]);
        std::fs::create_dir(dir.path().join("ctx-dir")).unwrap();
        let (_, _, errors) = assemble_at(
            dir.path(),
            r#"
[workspace.metadata.hive]
base = "scratch"
run = ["true"]

[package.metadata.hive.images.runtime]
bin = "app"

[package.metadata.hive.images.api]
bin = "app"
dockerfile = "api.Dockerfile"
target = "final"
build-args = { "A=B" = "x" }
base = "scratch"
run = ["echo"]
files = [{ src = "x", dst = "/x" }]
entrypoint = ["/a"]
cmd = ["b"]
env = { A = "b" }
user = "1"
workdir = "/w"
expose = [80]

[package.metadata.hive.images.gone]
bin = "app"
dockerfile = "nope.Dockerfile"
context = ".."

[package.metadata.hive.images.dir]
bin = "app"
dockerfile = "ctx-dir"

[package.metadata.hive.images.dir.variants.debug]
env = { DEBUG = "1" }
"#,
            vec![],
        );
        assert_eq!(
            errors,
            [
                "dockerfile-and-base: image `api` is built from a Dockerfile and cannot set `base`",
                "dockerfile-and-run: image `api` is built from a Dockerfile and cannot set `run`",
                "dockerfile-and-files: image `api` is built from a Dockerfile and cannot set `files`",
                "dockerfile-and-config: image `api` is built from a Dockerfile and cannot set `entrypoint`",
                "dockerfile-and-config: image `api` is built from a Dockerfile and cannot set `cmd`",
                "dockerfile-and-config: image `api` is built from a Dockerfile and cannot set `env`",
                "dockerfile-and-config: image `api` is built from a Dockerfile and cannot set `user`",
                "dockerfile-and-config: image `api` is built from a Dockerfile and cannot set `workdir`",
                "dockerfile-and-config: image `api` is built from a Dockerfile and cannot set `expose`",
                "unknown-stage: the Dockerfile has no stage `final`",
                "unknown-base-image: the Dockerfile's `FROM hive-runtme` names no other image of the workspace",
                "invalid-build-arg: invalid build argument name `A=B`",
                "wrong-file-type: `dockerfile = \"ctx-dir\"` is a directory, not a file",
                "dockerfile-and-config: image `dir@debug` is built from a Dockerfile and cannot set `env`",
                "wrong-file-type: `dockerfile = \"ctx-dir\"` is a directory, not a file",
                "missing-file: `dockerfile = \"nope.Dockerfile\"` does not exist in package `app`",
                "file-outside-workspace: `context = \"..\"` is outside the workspace",
            ]
        );
    }

    #[test]
    fn a_cycle_through_a_dockerfile_names_every_edge() {
        let dir = workspace_with(&[("api.Dockerfile", "FROM hive-app\n")]);
        let (_, _, errors) = assemble_at(
            dir.path(),
            r#"
[package.metadata.hive.images.api]
bin = "app"
dockerfile = "api.Dockerfile"

[package.metadata.hive.images.app]
bin = "app"
base = "hive:api"
"#,
            vec![],
        );
        assert_eq!(
            errors,
            [
                "base-cycle: the images' bases form a cycle: api → app → api; `api` is built on `app` \
                 (FROM hive-app, Cargo.toml:4); `app` is built on `api` (base = \"hive:api\", Cargo.toml:8)"
            ]
        );
    }

    #[test]
    fn a_dockerfile_image_needs_its_from_images_on_its_platforms() {
        let dir = workspace_with(&[("api.Dockerfile", "FROM hive-runtime\n")]);
        let (_, _, errors) = assemble_at(
            dir.path(),
            r#"
[package.metadata.hive.images.runtime]
bin = "app"
base = "scratch"

[package.metadata.hive.images.api]
bin = "app"
dockerfile = "api.Dockerfile"
platforms = ["linux/amd64", "linux/arm64"]
"#,
            vec![],
        );
        assert_eq!(
            errors,
            [
                "base-platform: image `api` is built for linux/arm64 from a Dockerfile with `FROM hive-runtime`, \
                 which has no linux/arm64 image (it has: linux/amd64)"
            ]
        );
    }

    #[test]
    fn a_variant_can_be_a_dockerfile_image_of_an_image_with_a_base() {
        let dir = workspace_with(&[("debug.Dockerfile", "FROM hive-app\n")]);
        let (assembled, _, errors) = assemble_at(
            dir.path(),
            r#"
[package.metadata.hive.images.app]
bin = "app"
base = "scratch"
env = { A = "1" }

[package.metadata.hive.images.app.variants.debug]
dockerfile = "debug.Dockerfile"
"#,
            vec![],
        );
        // The image's own base and env are inherited by the variant, so not used there, and no error.
        assert_eq!(errors, Vec::<String>::new());
        let debug = assembled
            .images
            .iter()
            .find(|i| i.name == "app@debug")
            .unwrap();
        assert_eq!(debug.base, Base::Dockerfile);
        assert!(debug.config.env.is_empty());
        assert_eq!(debug.dockerfile.as_ref().unwrap().hive_images, ["app"]);
    }
}
