//! From definitions to the plan: layers merged (workspace → package → image → build.rs; maps merge key by key,
//! lists and single values replace), defaults filled in, templates rendered, and every value checked. What comes out
//! has nothing left to check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use hive_build::ImageDef;
use hive_build::plan::{Base, Binary, ImageConfig, Origin, PackageInfo, Plan, PlanImage};
use hive_build::schema::{binary_path, defaults};

use crate::config::{
    ConfigError, Definitions, Diagnostics, ImageDefinition, Layer, Package, Place, did_you_mean,
};
use crate::plan::facts::{self, Chain, ImageFacts, Resolved, Walk};
use crate::plan::git::GitFacts;
use crate::plan::platform::Platform;
use crate::plan::reference::{Invalid, check_repository, check_tag, parse_base};
use crate::plan::template::{self, Context};

/// The layers of one image, lowest precedence first.
pub(super) struct Layers<'a>(&'a [Layer]);

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
    for definition in &definitions.images {
        let package = &definitions.workspace.packages[definition.package];
        let root = &definitions.workspace.root;
        let assembler = Assembler::new(definition, package, diags);
        if let Some((image, typed)) = assembler.resolve(root, &names, context) {
            platforms.insert(image.name.clone(), typed);
            images.push(image);
        }
    }
    let chains = chains(&images, definitions, diags);
    images.sort_by(|a, b| a.name.cmp(&b.name));
    let facts = chains
        .into_iter()
        .filter_map(|(name, chain)| {
            let platforms = platforms.remove(&name)?;
            Some((name, ImageFacts { platforms, chain }))
        })
        .collect();
    Assembled { images, facts }
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
        package: &'a Package,
        diags: &'d mut Diagnostics,
    ) -> Self {
        Assembler {
            definition,
            package,
            layers: Layers(&definition.layers),
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
    ) -> Option<(PlanImage, Vec<Platform>)> {
        let errors_before = self.diags.len();
        let bin = self.bin();
        let base = self.base(names);
        let repository = self.repository();
        let tags = self.tags(context);
        let (platforms, typed) = self.platforms();
        let binary = Binary {
            target: bin.clone(),
            path: binary_path(&bin),
        };
        let mut config = self.config(&binary);
        config.labels = self.labels();
        config.annotations = self.annotations();
        super::nul::check(&self.layers, self.diags);
        let files = self.files(root, &binary);
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
            binary,
            repository,
            tags,
            references,
            platforms,
            base,
            files,
            config,
            origins: self.origins,
            selected: true,
            per_platform: Vec::new(),
        };
        Some((image, typed))
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
        let Some((registry, layer)) = self.layers.registry() else {
            set_origin(&mut self.origins, "repository", None);
            return self.name.to_owned();
        };
        let repository = format!("{}/{}", registry.trim_end_matches('/'), self.name);
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
        for (index, template) in templates.iter().enumerate() {
            let place = self.list_place(layer, "tags", index);
            match template::render(template, &self.package.version, context) {
                Ok(tag) => {
                    if let Some(error) = self.tag_mistake(&tag, template, &tags, &place) {
                        self.diags.push(error);
                    } else {
                        tags.push(tag);
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
    definitions: &Definitions,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Chain> {
    let by_name: BTreeMap<&str, &PlanImage> = images
        .iter()
        .map(|image| (image.name.as_str(), image))
        .collect();
    let mut chains = BTreeMap::new();
    let mut reported = BTreeSet::new();
    for image in images {
        let cycle = match facts::walk(image, &by_name) {
            Walk::Chain(chain) => {
                chains.insert(image.name.clone(), chain);
                continue;
            }
            Walk::Broken => continue,
            Walk::Cycle(cycle) => cycle,
        };
        if cycle.iter().any(|name| reported.contains(name)) {
            continue;
        }
        reported.extend(cycle.iter().cloned());
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
        diags.push(
            ConfigError::new(
                "base-cycle",
                &layer.place("base"),
                format!("the `hive:` bases form a cycle: {}", cycle.join(" → ")),
                "cycle",
            )
            .help("one image of the cycle must start from `scratch` or a registry image"),
        );
    }
    chains
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
}

/// The selected images, plus every image a selected one is built on (`hive:` bases), marked unselected.
pub(crate) fn select(
    assembled: Assembled,
    definitions: &Definitions,
    image_names: &[String],
    packages_given: bool,
) -> Result<Assembled, SelectError> {
    let Assembled { mut images, facts } = assembled;
    let workspace = &definitions.workspace;
    let selected_packages: BTreeSet<&str> = workspace
        .selected
        .iter()
        .map(|index| workspace.packages[*index].name.as_str())
        .collect();
    for wanted in image_names {
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
        image.selected = if image_names.is_empty() {
            selected_packages.contains(image.package.name.as_str())
        } else {
            image_names.contains(&image.name)
        };
    }
    // A selected image needs every image of its chain.
    let needed: BTreeSet<&String> = images
        .iter()
        .filter(|image| image.selected)
        .flat_map(|image| &facts[&image.name].chain.images)
        .collect();
    let needed: BTreeSet<String> = needed.into_iter().cloned().collect();
    images.retain(|image| needed.contains(&image.name));
    let facts = facts
        .into_iter()
        .filter(|(name, _)| needed.contains(name))
        .collect();
    Ok(Assembled { images, facts })
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
            images: assembled.images,
        },
        image_facts: assembled.facts,
        git,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
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
            manifest_path: PathBuf::from("/w/Cargo.toml"),
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
            .map(|image| ImageDefinition {
                name: image.name,
                package: 0,
                declared: image.name_place,
                layers: manifest
                    .workspace
                    .iter()
                    .cloned()
                    .chain([package_hive.defaults.clone(), image.layer])
                    .collect(),
            })
            .collect();
        for (name, def) in build_script {
            let image = images.iter_mut().find(|image| image.name == name).unwrap();
            image
                .layers
                .push(Layer::from_build_script("app", name, def));
        }
        let definitions = Definitions {
            workspace: Workspace {
                root: PathBuf::from("/w"),
                root_manifest: PathBuf::from("/w/Cargo.toml"),
                target_directory: PathBuf::from("/w/target"),
                packages: vec![package],
                selected: vec![0],
            },
            images,
            connection: Default::default(),
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

[package.metadata.hive.images.app]
bin = "app"
base = "hive:runtime"
"#,
            vec![],
        );
        assert_eq!(errors, Vec::<String>::new());
        let os = &assembled.facts["os"];
        assert_eq!(
            (os.platform().architecture(), os.platform().variant()),
            ("arm", Some("v7"))
        );
        let app = &assembled.facts["app"];
        assert_eq!(app.chain.images, ["os", "runtime", "app"]);
        assert_eq!(
            app.chain.root,
            Base::Image {
                reference: "localhost:5000/hive/busybox:latest".into()
            }
        );
        assert!(os.chain.is_direct());
        // `--image app` pulls in its whole chain, unselected; `--image runtime` leaves `app` out.
        let selected = select(assembled, &definitions, &["runtime".to_owned()], false).unwrap();
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

    #[test]
    fn select_errors_are_typed() {
        let (assembled, definitions, _) = assemble_text(
            "[package.metadata.hive.images.app]\nbin = \"app\"\n",
            vec![],
        );
        let err = select(assembled, &definitions, &["ap".to_owned()], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no image named `ap` in the workspace; did you mean `app`?"
        );
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
            vec![("app", build_script)],
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
}
