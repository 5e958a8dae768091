//! From definitions to the plan: layers merged (workspace → package → image → build.rs; maps merge key by key,
//! lists and single values replace), defaults filled in, templates rendered, and every value checked. What comes out
//! has nothing left to check.

use std::collections::{BTreeMap, BTreeSet};

use hive_build::ImageDef;
use hive_build::plan::{Base, Binary, ImageConfig, Origin, PackageInfo, Plan, PlanImage};
use hive_build::schema::{binary_path, defaults};

use crate::config::{
    ConfigError, Definitions, Diagnostics, ImageDefinition, Layer, Package, Place, did_you_mean,
};
use crate::plan::reference::{Invalid, check_platform, check_repository, check_tag, parse_base};
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

/// Resolves every image of the workspace. Mistakes go to `diags`; the images that resolved are returned.
pub(crate) fn resolve_all(
    definitions: &Definitions,
    context: &Context<'_>,
    diags: &mut Diagnostics,
) -> Vec<PlanImage> {
    let names: BTreeSet<&str> = definitions
        .images
        .iter()
        .map(|image| image.name.as_str())
        .collect();
    let mut images = Vec::new();
    for definition in &definitions.images {
        let package = &definitions.workspace.packages[definition.package];
        let root = &definitions.workspace.root;
        if let Some(image) = resolve_image(definition, package, root, &names, context, diags) {
            images.push(image);
        }
    }
    check_base_cycles(&images, definitions, diags);
    images.sort_by(|a, b| a.name.cmp(&b.name));
    images
}

fn resolve_image(
    definition: &ImageDefinition,
    package: &Package,
    root: &std::path::Path,
    names: &BTreeSet<&str>,
    context: &Context<'_>,
    diags: &mut Diagnostics,
) -> Option<PlanImage> {
    let layers = Layers(&definition.layers);
    let name = definition.name.as_str();
    let errors_before = diags.len();
    let mut origins = BTreeMap::new();

    // bin
    let bin = match layers.pick(|def| def.bin.as_deref()) {
        Some((bin, layer)) => {
            set_origin(&mut origins, "bin", Some(layer));
            if !package.bins.iter().any(|known| known == bin) {
                let mut error = ConfigError::new(
                    "unknown-bin",
                    &layer.place("bin"),
                    format!("package `{}` has no binary target `{bin}`", package.name),
                    "no such binary",
                );
                error = match (
                    did_you_mean(bin, package.bins.iter().map(String::as_str)),
                    package.bins.is_empty(),
                ) {
                    (Some(close), _) => error.help(format!("did you mean `{close}`?")),
                    (None, true) => error.help(format!(
                        "package `{}` has no `[[bin]]` target",
                        package.name
                    )),
                    (None, false) => {
                        error.help(format!("its binaries: {}", package.bins.join(", ")))
                    }
                };
                diags.push(error);
            }
            bin.to_owned()
        }
        None => {
            set_origin(&mut origins, "bin", None);
            match &package.bins[..] {
                [only] => only.clone(),
                [] => {
                    diags.push(
                        ConfigError::new(
                            "no-bin",
                            &definition.declared,
                            format!("image `{name}` has no binary to package: package `{}` has no binary target", package.name),
                            "no binary",
                        )
                        .help("declare images in the package that builds the binary (with `src/main.rs` or `[[bin]]`)"),
                    );
                    String::new()
                }
                several => {
                    diags.push(
                        ConfigError::new(
                            "ambiguous-bin",
                            &definition.declared,
                            format!(
                                "image `{name}` does not say which binary of package `{}` to package",
                                package.name
                            ),
                            "which binary?",
                        )
                        .help(format!("set `bin` to one of: {}", several.join(", "))),
                    );
                    String::new()
                }
            }
        }
    };

    // base
    let base = match layers.pick(|def| def.base.as_deref()) {
        Some((text, layer)) => {
            set_origin(&mut origins, "base", Some(layer));
            let place = layer.place("base");
            match parse_base(text) {
                Ok(Base::Hive { image }) if !names.contains(image.as_str()) || image == name => {
                    let reason = if image == name {
                        "an image cannot be its own base"
                    } else {
                        "no such image"
                    };
                    let mut error = ConfigError::new(
                        "unknown-base-image",
                        &place,
                        format!("`base = \"{text}\"` names no other image of the workspace"),
                        reason,
                    );
                    let others = names.iter().copied().filter(|other| *other != name);
                    error = match did_you_mean(&image, others) {
                        Some(close) => error.help(format!("did you mean `hive:{close}`?")),
                        None => {
                            error.help("`hive:<name>` names an image declared in this workspace")
                        }
                    };
                    diags.push(error);
                    Base::Scratch
                }
                Ok(base) => base,
                Err(why) => {
                    diags.push(invalid(
                        "invalid-base",
                        &place,
                        format!("invalid base image `{text}`"),
                        why,
                        "invalid",
                    ));
                    Base::Scratch
                }
            }
        }
        None => {
            set_origin(&mut origins, "base", None);
            parse_base(defaults::BASE).expect("the default base parses")
        }
    };

    // repository
    let repository = match layers.pick(|def| def.repository.as_deref()) {
        Some((repository, layer)) => {
            set_origin(&mut origins, "repository", Some(layer));
            if let Err(why) = check_repository(repository) {
                let place = layer.place("repository");
                diags.push(invalid(
                    "invalid-repository",
                    &place,
                    format!("invalid repository `{repository}`"),
                    why,
                    "invalid",
                ));
            }
            repository.to_owned()
        }
        None => match layers.registry() {
            Some((registry, layer)) => {
                let repository = format!("{}/{name}", registry.trim_end_matches('/'));
                if let Err(mut why) = check_repository(&repository) {
                    let place = layer.place("registry");
                    if registry != registry.to_lowercase() {
                        why.help = Some(format!("write `{}`", registry.to_lowercase()));
                    }
                    diags.push(invalid(
                        "invalid-registry",
                        &place,
                        format!("invalid registry `{registry}`"),
                        why,
                        "invalid",
                    ));
                }
                origins.insert("repository".into(), layer.place("registry").origin());
                repository
            }
            None => {
                set_origin(&mut origins, "repository", None);
                name.to_owned()
            }
        },
    };

    // tags
    let (tag_templates, tags_layer): (Vec<String>, Option<&Layer>) =
        match layers.pick(|def| def.tags.as_ref()) {
            Some((tags, layer)) => (tags.clone(), Some(layer)),
            None => (
                defaults::TAGS.iter().map(|tag| (*tag).to_owned()).collect(),
                None,
            ),
        };
    set_origin(&mut origins, "tags", tags_layer);
    let tags_place = |index: usize| {
        tags_layer.map_or(definition.declared.clone(), |layer| {
            layer.place(&format!("tags[{index}]"))
        })
    };
    if tag_templates.is_empty() {
        diags.push(
            ConfigError::new(
                "no-tags",
                &tags_place(0),
                format!("image `{name}` has no tags"),
                "empty",
            )
            .help("list at least one tag, for example `tags = [\"{version}\"]`"),
        );
    }
    let mut tags: Vec<String> = Vec::new();
    for (index, template) in tag_templates.iter().enumerate() {
        let place = tags_place(index);
        match template::render(template, &package.version, context) {
            Ok(tag) => {
                if let Err(why) = check_tag(&tag) {
                    let shown = if tag == *template {
                        format!("`{tag}`")
                    } else {
                        format!("`{tag}` (from `{template}`)")
                    };
                    diags.push(invalid(
                        "invalid-tag",
                        &place,
                        format!("invalid tag {shown}"),
                        why,
                        "invalid tag",
                    ));
                } else if tags.contains(&tag) {
                    diags.push(
                        ConfigError::new(
                            "duplicate-tag",
                            &place,
                            format!("tag `{tag}` appears twice in image `{name}`"),
                            "again",
                        )
                        .help("remove one of them"),
                    );
                } else {
                    tags.push(tag);
                }
            }
            Err(errors) => {
                for error in errors {
                    let inner = place.inner(template, error.offset, error.len);
                    let mut error_out =
                        ConfigError::new("template", &inner, error.message, error.label);
                    if let Some(help) = error.help {
                        error_out = error_out.help(help);
                    }
                    diags.push(error_out);
                }
            }
        }
    }

    // platforms
    let (platforms, platforms_layer): (Vec<String>, Option<&Layer>) =
        match layers.pick(|def| def.platforms.as_ref()) {
            Some((platforms, layer)) => (platforms.clone(), Some(layer)),
            None => (
                defaults::PLATFORMS
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect(),
                None,
            ),
        };
    set_origin(&mut origins, "platforms", platforms_layer);
    let platform_place = |index: usize| {
        platforms_layer.map_or(definition.declared.clone(), |layer| {
            layer.place(&format!("platforms[{index}]"))
        })
    };
    if platforms.is_empty() {
        diags.push(
            ConfigError::new(
                "no-platforms",
                &platform_place(0),
                format!("image `{name}` has no platforms"),
                "empty",
            )
            .help("list at least one, for example `platforms = [\"linux/amd64\"]`"),
        );
    }
    for (index, platform) in platforms.iter().enumerate() {
        if let Err(why) = check_platform(platform) {
            let place = platform_place(index);
            diags.push(invalid(
                "invalid-platform",
                &place,
                format!("invalid platform `{platform}`"),
                why,
                "invalid platform",
            ));
        } else if platforms[..index].contains(platform) {
            diags.push(
                ConfigError::new(
                    "duplicate-platform",
                    &platform_place(index),
                    format!("platform `{platform}` is listed twice"),
                    "again",
                )
                .help("remove one of them"),
            );
        }
    }

    // image config
    let binary = Binary {
        target: bin.clone(),
        path: binary_path(&bin),
    };
    let entrypoint = match layers.pick(|def| def.entrypoint.as_ref()) {
        Some((entrypoint, layer)) => {
            set_origin(&mut origins, "entrypoint", Some(layer));
            entrypoint.clone()
        }
        None => {
            set_origin(&mut origins, "entrypoint", None);
            vec![binary.path.clone()]
        }
    };
    let cmd = layers.pick(|def| def.cmd.as_ref());
    set_origin(&mut origins, "cmd", cmd.map(|(_, layer)| layer));
    let cmd = cmd.map(|(cmd, _)| cmd.clone()).unwrap_or_default();

    let workdir = layers
        .pick(|def| def.workdir.as_deref())
        .map(|(workdir, layer)| {
            set_origin(&mut origins, "workdir", Some(layer));
            if !workdir.starts_with('/') {
                diags.push(
                    ConfigError::new(
                        "relative-path",
                        &layer.place("workdir"),
                        format!("`workdir` must be an absolute path, not `{workdir}`"),
                        "relative",
                    )
                    .help(format!("write `/{}`", workdir.trim_start_matches("./"))),
                );
            }
            workdir.to_owned()
        });
    let user = layers.pick(|def| def.user.as_deref()).map(|(user, layer)| {
        set_origin(&mut origins, "user", Some(layer));
        if user.is_empty() || user.contains(char::is_whitespace) {
            diags.push(
                ConfigError::new("invalid-user", &layer.place("user"), format!("invalid user `{user}`"), "invalid")
                    .help("a user is a name or uid, optionally with a group: `nonroot`, `65532`, `65532:65532`"),
            );
        }
        user.to_owned()
    });
    let exposed_ports = match layers.pick(|def| def.expose.as_ref()) {
        Some((ports, layer)) => {
            set_origin(&mut origins, "expose", Some(layer));
            let mut ports = ports.clone();
            ports.sort();
            ports.dedup();
            ports
        }
        None => Vec::new(),
    };

    let mut env = BTreeMap::new();
    for (key, (value, layer)) in layers.merged(|def| &def.env) {
        set_origin(&mut origins, &format!("env.{key}"), Some(layer));
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            diags.push(
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

    let mut labels = BTreeMap::new();
    let mut package_label = |key: &str, value: &Option<String>, field: &'static str| {
        if let Some(value) = value {
            labels.insert(format!("org.opencontainers.image.{key}"), value.clone());
            origins.insert(
                format!("labels.org.opencontainers.image.{key}"),
                Place::PackageField(field).origin(),
            );
        }
    };
    package_label("title", &Some(name.to_owned()), "name");
    package_label("version", &Some(package.version.to_string()), "version");
    package_label("description", &package.description, "description");
    package_label("licenses", &package.license, "license");
    package_label("source", &package.repository, "repository");
    package_label("url", &package.homepage, "homepage");
    // The title is the image's name; say so rather than pretending it is the package's.
    origins.insert(
        "labels.org.opencontainers.image.title".into(),
        Origin::Default,
    );
    for (field, get) in [
        (
            "labels",
            (|def: &'_ ImageDef| &def.labels) as fn(&ImageDef) -> &BTreeMap<String, String>,
        ),
        ("annotations", |def| &def.annotations),
    ] {
        for (key, (_, layer)) in layers.merged(get) {
            if key.is_empty() {
                diags.push(ConfigError::new(
                    "invalid-key",
                    &layer.place(&format!("{field}.#key")),
                    format!("empty key in `{field}`"),
                    "empty",
                ));
            }
            origins.insert(
                format!("{field}.{key}"),
                layer.place(&format!("{field}.{key}")).origin(),
            );
        }
    }
    labels.extend(
        layers
            .merged(|def| &def.labels)
            .into_iter()
            .map(|(key, (value, _))| (key.to_owned(), value.to_owned())),
    );
    let annotations: BTreeMap<String, String> = layers
        .merged(|def| &def.annotations)
        .into_iter()
        .map(|(key, (value, _))| (key.to_owned(), value.to_owned()))
        .collect();

    super::nul::check(&layers, diags);

    // files
    let mut files = Vec::new();
    if let Some((specs, layer)) = layers.pick(|def| def.files.as_ref()) {
        origins.insert("files".into(), layer.place("files").origin());
        let binary = (!binary.target.is_empty()).then_some(binary.path.as_str());
        files = super::files::resolve(specs, layer, package, root, binary, diags);
    }

    let manifest_path = package
        .manifest_path
        .strip_prefix(root)
        .unwrap_or(&package.manifest_path)
        .display()
        .to_string();
    if diags.len() > errors_before {
        return None;
    }
    let references = tags
        .iter()
        .map(|tag| format!("{repository}:{tag}"))
        .collect();
    Some(PlanImage {
        name: name.to_owned(),
        package: PackageInfo {
            name: package.name.clone(),
            version: package.version.to_string(),
            manifest_path,
            description: package.description.clone(),
            license: package.license.clone(),
            repository: package.repository.clone(),
            homepage: package.homepage.clone(),
        },
        declared_in: definition.declared.origin(),
        binary,
        repository,
        tags,
        references,
        platforms,
        base,
        files,
        config: ImageConfig {
            entrypoint,
            cmd,
            env,
            workdir,
            user,
            exposed_ports,
            labels,
            annotations,
        },
        origins,
        selected: true,
    })
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

/// `hive:` bases must not form a cycle: each image is built after its base.
fn check_base_cycles(images: &[PlanImage], definitions: &Definitions, diags: &mut Diagnostics) {
    let base_of = |name: &str| {
        images
            .iter()
            .find(|image| image.name == name)
            .and_then(|image| match &image.base {
                Base::Hive { image } => Some(image.clone()),
                _ => None,
            })
    };
    let mut reported = BTreeSet::new();
    for image in images {
        let mut chain = vec![image.name.clone()];
        let mut current = image.name.clone();
        while let Some(next) = base_of(&current) {
            if next == image.name {
                if chain.iter().any(|name| reported.contains(name)) {
                    break;
                }
                reported.extend(chain.iter().cloned());
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
                chain.push(next);
                diags.push(
                    ConfigError::new(
                        "base-cycle",
                        &layer.place("base"),
                        format!("the `hive:` bases form a cycle: {}", chain.join(" → ")),
                        "cycle",
                    )
                    .help("one image of the cycle must start from `scratch` or a registry image"),
                );
                break;
            }
            if chain.contains(&next) {
                break;
            }
            chain.push(next.clone());
            current = next;
        }
    }
}

/// The selected images, plus every image a selected one is built on (`hive:` bases), marked unselected.
pub(crate) fn select(
    mut images: Vec<PlanImage>,
    definitions: &Definitions,
    image_names: &[String],
    packages_given: bool,
) -> Result<Vec<PlanImage>, String> {
    let workspace = &definitions.workspace;
    let selected_packages: BTreeSet<&str> = workspace
        .selected
        .iter()
        .map(|index| workspace.packages[*index].name.as_str())
        .collect();
    for wanted in image_names {
        let Some(image) = images.iter().find(|image| image.name == *wanted) else {
            let mut message = format!("no image named `{wanted}` in the workspace");
            if let Some(close) =
                did_you_mean(wanted, images.iter().map(|image| image.name.as_str()))
            {
                message.push_str(&format!("; did you mean `{close}`?"));
            }
            return Err(message);
        };
        if packages_given && !selected_packages.contains(image.package.name.as_str()) {
            return Err(format!(
                "image `{wanted}` belongs to package `{}`, which is not selected",
                image.package.name
            ));
        }
    }
    for image in &mut images {
        image.selected = if image_names.is_empty() {
            selected_packages.contains(image.package.name.as_str())
        } else {
            image_names.contains(&image.name)
        };
    }
    // Pull in bases until nothing changes; cycles were rejected before.
    let mut needed: BTreeSet<String> = images
        .iter()
        .filter(|image| image.selected)
        .map(|image| image.name.clone())
        .collect();
    loop {
        let bases: Vec<String> = images
            .iter()
            .filter(|image| needed.contains(&image.name))
            .filter_map(|image| match &image.base {
                Base::Hive { image } => Some(image.clone()),
                _ => None,
            })
            .filter(|base| !needed.contains(base))
            .collect();
        if bases.is_empty() {
            break;
        }
        needed.extend(bases);
    }
    images.retain(|image| needed.contains(&image.name));
    Ok(images)
}

/// The plan of the selected images.
pub(crate) fn plan(images: Vec<PlanImage>, definitions: &Definitions, profile: &str) -> Plan {
    Plan {
        format_version: hive_build::plan::FORMAT_VERSION,
        workspace_root: definitions.workspace.root.display().to_string(),
        profile: profile.to_owned(),
        images,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::config::{SourceFile, Workspace};
    use crate::plan::template::tests::FakeGit;

    /// Resolves the images of a one-package workspace whose manifest is `text`, plus optional build-script layers.
    fn resolve_text(
        text: &str,
        build_script: Vec<(&str, ImageDef)>,
    ) -> (Vec<PlanImage>, Vec<String>) {
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
        };
        let git = FakeGit(Some(("0123456789abcdef0123456789abcdef01234567", "main")));
        let context = Context {
            profile: "release",
            git: &git,
            env: &|_| None,
        };
        let images = resolve_all(&definitions, &context, &mut diags);
        (images, diags.messages())
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
