//! Image definitions as the user wrote them: `[workspace.metadata.hive]`, `[package.metadata.hive]`, the image
//! tables and what build scripts emitted through `hive-build`, each value with its place. Type and key mistakes are
//! found here; whether values make sense together is `plan`'s job.

mod diagnostic;
mod manifest;
mod script_images;
mod settings;
mod source;
mod workspace;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use hive_build::Action;

pub(crate) use diagnostic::{ConfigError, Diagnostics, did_you_mean, file_kind};
#[cfg(test)]
pub(crate) use manifest::read_manifest;
pub(crate) use manifest::{Layer, check_image_name};

pub(crate) use settings::{ConnectionSettings, connection_settings};
pub(crate) use source::{Place, SourceFile};
pub(crate) use workspace::{Package, Selection, Workspace};

use crate::cargo::Cargo;
use crate::errors::HiveError;

/// One image and the layers that define it, lowest precedence first: workspace defaults, package defaults, the
/// image's own table (or the build script's declaration), then build-script changes.
#[derive(Debug)]
pub(crate) struct ImageDefinition {
    pub(crate) name: String,
    /// Index into [`Workspace::packages`].
    pub(crate) package: usize,
    /// Where the image was declared: its table's key, or the build script.
    pub(crate) declared: Place,
    pub(crate) layers: Vec<Layer>,
    /// What makes it a variant of another image, when it is one (`api@debug`).
    pub(crate) variant: Option<Variant>,
}

/// A variant: an image made of its image's layers with the variant's table on top, named `<image>@<variant>`.
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    /// The image it is a variant of (`api`): its repository is that image's.
    pub(crate) of: String,
    /// The variant's own name (`debug`).
    pub(crate) name: String,
    /// What is appended to every rendered tag (`tag-suffix`, default `-<variant>`), and where it was set (the
    /// variant's key for the default); `None` when the variant sets `tags` itself, which are used as written.
    pub(crate) tag_suffix: Option<(String, Place)>,
}

/// Everything the workspace declares.
#[derive(Debug)]
pub(crate) struct Definitions {
    pub(crate) workspace: Workspace,
    /// Every image of every member, in declaration order.
    pub(crate) images: Vec<ImageDefinition>,
    /// How `[workspace.metadata.hive]` says to reach BuildKit.
    pub(crate) connection: ConnectionSettings,
    /// `[workspace.metadata.hive]`, the first layer of every image.
    pub(crate) workspace_defaults: Option<Layer>,
    /// `[package.metadata.hive]` of each member (by index into [`Workspace::packages`]).
    pub(crate) package_defaults: Vec<Option<Layer>>,
    /// The target triples each package's build script ran for (by package index); only packages that use
    /// `hive-build`, and empty until [`run_build_scripts`].
    pub(crate) script_runs: BTreeMap<usize, BTreeSet<String>>,
}

/// The triples to run the build scripts for, and whether cargo is told them (`--target`) or builds for the host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScriptTargets<'a> {
    pub(crate) triples: &'a BTreeSet<String>,
    pub(crate) pass_target: bool,
}

/// Options that decide what is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadOptions<'a> {
    /// The cargo that reads the workspace and runs its build scripts.
    pub(crate) cargo: &'a Cargo,
    pub(crate) selection: &'a Selection,
}

/// Reads a manifest of `workspace`, named for diagnostics relative to the current directory.
fn read(path: &Path, workspace_root: &Path) -> Result<Arc<SourceFile>, HiveError> {
    let text = std::fs::read_to_string(path).map_err(|source| HiveError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let cwd = std::env::current_dir().unwrap_or_default();
    let shown = |base: &Path| {
        path.strip_prefix(base)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    Ok(Arc::new(SourceFile::new(
        shown(&cwd),
        shown(workspace_root),
        text,
    )))
}

/// Reads the workspace's definitions; mistakes with a place go to `diags`, anything else is an `Err`.
pub(crate) fn load(
    options: LoadOptions<'_>,
    diags: &mut Diagnostics,
) -> Result<Definitions, HiveError> {
    let workspace = workspace::load(options.cargo.manifest_path.as_deref(), options.selection)?;
    let read = |path: &Path| read(path, &workspace.root);

    let root_file = read(&workspace.root_manifest)?;
    let root_is_member = workspace
        .packages
        .iter()
        .any(|package| package.manifest_path == workspace.root_manifest);
    let root_hive = manifest::read_manifest(&root_file, true, root_is_member, diags);
    let connection =
        ConnectionSettings::from_keys(&workspace.root_manifest, root_hive.connection, diags);
    let workspace_layer = root_hive.workspace;

    let mut images: Vec<ImageDefinition> = Vec::new();
    // `[package.metadata.hive]` per member, for images its build script declares.
    let mut package_defaults: Vec<Option<Layer>> = vec![None; workspace.packages.len()];
    for (index, package) in workspace.packages.iter().enumerate() {
        let package_hive = if package.manifest_path == workspace.root_manifest {
            root_hive.package.clone()
        } else {
            manifest::read_manifest(&read(&package.manifest_path)?, false, true, diags).package
        };
        let Some(package_hive) = package_hive else {
            continue;
        };
        package_defaults[index] = Some(package_hive.defaults.clone());
        for image in package_hive.images {
            let mut layers: Vec<Layer> = workspace_layer.iter().cloned().collect();
            layers.push(package_hive.defaults.clone());
            layers.push(image.layer);
            let variants = variant_definitions(&image.name, index, &layers, image.variants);
            add_image(
                &mut images,
                ImageDefinition {
                    name: image.name,
                    package: index,
                    declared: image.name_place,
                    layers,
                    variant: None,
                },
                diags,
            );
            for variant in variants {
                add_image(&mut images, variant, diags);
            }
        }
    }

    Ok(Definitions {
        workspace,
        images,
        connection,
        workspace_defaults: workspace_layer,
        package_defaults,
        script_runs: BTreeMap::new(),
    })
}

/// Runs the build scripts that use `hive-build` once per triple of `targets` and adds what they declared, in place
/// of what an earlier run added.
pub(crate) fn run_build_scripts(
    definitions: &mut Definitions,
    cargo: &Cargo,
    targets: ScriptTargets<'_>,
    diags: &mut Diagnostics,
) -> Result<(), HiveError> {
    definitions
        .images
        .retain(|image| !matches!(image.declared, Place::BuildScript { .. }));
    for image in &mut definitions.images {
        image.layers.retain(|layer| layer.target.is_none());
    }
    let scripts = script_images::run(&definitions.workspace, cargo, targets)?;
    definitions.script_runs = script_images::users(&definitions.workspace)
        .map(|package| (package, targets.triples.clone()))
        .collect();
    let defaults = Defaults {
        workspace: definitions.workspace_defaults.as_ref(),
        packages: &definitions.package_defaults,
    };
    add_script_images(
        &definitions.workspace,
        scripts,
        defaults,
        &mut definitions.images,
        diags,
    );
    Ok(())
}

/// The defaults an image declared by a build script starts from.
#[derive(Clone, Copy)]
struct Defaults<'a> {
    /// `[workspace.metadata.hive]`.
    workspace: Option<&'a Layer>,
    /// `[package.metadata.hive]` of each member.
    packages: &'a [Option<Layer>],
}

/// Adds what build scripts declared (new images) and changed (images of their package's manifest).
fn add_script_images(
    workspace: &Workspace,
    scripts: Vec<script_images::ScriptOutput>,
    defaults: Defaults<'_>,
    images: &mut Vec<ImageDefinition>,
    diags: &mut Diagnostics,
) {
    for script in scripts {
        let package = &workspace.packages[script.package];
        for declared in script.output.images {
            let layer = Layer::from_build_script(
                &package.name,
                &declared.name,
                declared.image,
                &script.target,
            );
            let place = layer.whole.clone();
            if let Err(reason) = check_image_name(&declared.name) {
                diags.push(ConfigError::new(
                    "invalid-image-name",
                    &place,
                    format!("invalid image name `{}`: {reason}", declared.name),
                    "",
                ));
                continue;
            }
            match declared.action {
                Action::Declare => {
                    // Each run of the script (one per triple) declares it again: one image, one layer per run.
                    if let Some(image) = images.iter_mut().find(|image| {
                        image.name == declared.name
                            && image.package == script.package
                            && matches!(image.declared, Place::BuildScript { .. })
                            && image
                                .layers
                                .iter()
                                .all(|l| l.target.as_deref() != Some(&script.target))
                    }) {
                        image.layers.push(layer);
                        continue;
                    }
                    let mut layers: Vec<Layer> = defaults.workspace.into_iter().cloned().collect();
                    // The package defaults still apply to an image its build script declares.
                    layers.extend(defaults.packages[script.package].iter().cloned());
                    layers.push(layer);
                    let definition = ImageDefinition {
                        name: declared.name,
                        package: script.package,
                        declared: place,
                        layers,
                        variant: None,
                    };
                    add_image(images, definition, diags);
                }
                Action::Modify => {
                    // A build script's change to an image applies to its variants too, on top of their tables.
                    let mut changed = images
                        .iter_mut()
                        .filter(|image| {
                            image.package == script.package
                                && (image.name == declared.name
                                    || image
                                        .variant
                                        .as_ref()
                                        .is_some_and(|v| v.of == declared.name))
                        })
                        .peekable();
                    match changed.peek() {
                        Some(_) => changed.for_each(|image| image.layers.push(layer.clone())),
                        None => {
                            drop(changed);
                            let own = images
                                .iter()
                                .filter(|image| image.package == script.package);
                            let mut error = ConfigError::new(
                                "unknown-image",
                                &place,
                                format!(
                                    "the build script changes image `{}`, which `[package.metadata.hive.images]` of package `{}` does not declare",
                                    declared.name, package.name
                                ),
                                "",
                            );
                            error = match did_you_mean(
                                &declared.name,
                                own.map(|image| image.name.as_str()),
                            ) {
                                Some(close) => error.help(format!("did you mean `{close}`?")),
                                None => error.help(
                                    "declare a new image with `declare(Image::new(…))` instead",
                                ),
                            };
                            diags.push(error);
                        }
                    }
                }
            }
        }
    }
}

/// The definitions of an image's variants: the image's layers with the variant's on top.
pub(crate) fn variant_definitions(
    image: &str,
    package: usize,
    image_layers: &[Layer],
    variants: Vec<manifest::VariantTable>,
) -> Vec<ImageDefinition> {
    variants
        .into_iter()
        .map(|variant| {
            // Tags the variant sets are used as written, unless it also sets `tag-suffix` explicitly.
            let tag_suffix = match (variant.tag_suffix, variant.layer.def.tags.is_some()) {
                (Some(set), _) => Some(set),
                (None, true) => None,
                (None, false) => Some((format!("-{}", variant.name), variant.name_place.clone())),
            };
            let mut layers = image_layers.to_vec();
            layers.push(variant.layer);
            ImageDefinition {
                name: format!("{image}@{}", variant.name),
                package,
                declared: variant.name_place,
                layers,
                variant: Some(Variant {
                    of: image.to_owned(),
                    name: variant.name,
                    tag_suffix,
                }),
            }
        })
        .collect()
}

/// Adds an image unless its name is taken: image names are unique across the workspace.
fn add_image(images: &mut Vec<ImageDefinition>, image: ImageDefinition, diags: &mut Diagnostics) {
    if let Some(first) = images.iter().find(|other| other.name == image.name) {
        let first_at = match first.declared.origin() {
            hive_build::plan::Origin::Manifest { file, line, .. } => format!("{file}:{line}"),
            other => other.to_string(),
        };
        diags.push(
            ConfigError::new(
                "duplicate-image",
                &image.declared,
                format!("image `{}` is declared twice in the workspace", image.name),
                "declared again here",
            )
            .help(match (&image.declared, &first.declared) {
                (Place::BuildScript { .. }, Place::Manifest { .. }) if first.package == image.package => format!(
                    "{first_at} already declares it: change it with `modify(\"{}\", |image| …)` instead of `declare`",
                    image.name
                ),
                _ => format!("the first declaration is at {first_at}; image names must be unique across the workspace"),
            }),
        );
        return;
    }
    images.push(image);
}
