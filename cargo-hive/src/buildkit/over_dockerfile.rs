//! Our layers over a Dockerfile image built in the same solve: a `hive:` chain whose bottom image is a Dockerfile
//! image. The config our layers' RUN steps start from and our settings go over is the one the Dockerfile frontend
//! makes, and our LLB is built on the definition of its result (`Ref.def`), so the layers above are laid out here,
//! inside our frontend, once the frontend has built the bottom image.

use hive_build::plan::PlanRunStep;

use super::dockerfile::{self, DockerfileSolve};
use super::gateway::{FrontendError, Gateway, ResultRef};
use super::layout::{self, ConfigOverrides, ImageLayout, LayoutBase, Llb};
use super::llb::DefinitionBuilder;
use super::packing::Packing;
use super::solve::{LoaderCheck, LoaderNeed, solve_image};
use super::steps::exec_steps;

/// One platform of an image whose `hive:` chain starts at a Dockerfile image.
#[derive(Debug, Clone)]
pub(crate) struct LayersOverDockerfile {
    /// The Dockerfile image at the bottom, as its frontend is asked for it.
    pub(crate) below: DockerfileSolve,
    /// The Dockerfile image's name (in messages).
    pub(crate) below_name: String,
    /// A config we laid out for the Dockerfile image: its labels go over the Dockerfile's config.
    pub(crate) below_labels: Vec<u8>,
    /// Our layers, bottom first; `base` and `steps` are filled in once the Dockerfile image is built.
    pub(crate) layout: ImageLayout,
    /// Each of our layers' image: its RUN steps and settings, one per `layout.layers`.
    pub(crate) layers: Vec<UpperLayer>,
    /// The loader the image's binary needs, checked on everything below its own layer.
    pub(crate) loader: Option<LoaderNeed>,
}

/// One image of the chain above the Dockerfile image.
#[derive(Debug, Clone)]
pub(crate) struct UpperLayer {
    /// The image's name (its steps' progress and errors name it).
    pub(crate) image: String,
    /// Its RUN steps.
    pub(crate) run: Vec<PlanRunStep>,
    /// Its settings over the config below.
    pub(crate) overrides: ConfigOverrides,
}

/// Builds the Dockerfile image, then our layers on its result: each layer's steps resolved against the config
/// below them and its settings over it, packed where the daemon takes them so, after the loader check.
pub(super) async fn solve(
    gateway: &Gateway,
    over: LayersOverDockerfile,
    epoch: i64,
    packing: &Packing,
) -> Result<(ResultRef, Vec<u8>), FrontendError> {
    let built = dockerfile::solve_dockerfile(gateway, &over.below, epoch, packing).await?;
    let definition = built_definition(&built.result, &over.below_name)?;
    let config_error = |err: layout::ConfigError| FrontendError(err.to_string());
    let mut config =
        layout::labels_over(&built.config, &over.below_labels).map_err(config_error)?;
    let mut image_layout = over.layout;
    image_layout.base = Some(LayoutBase::Built { definition });
    image_layout.steps.clear();
    for layer in &over.layers {
        let steps = exec_steps(&layer.image, &layer.run, Some(&config)).map_err(config_error)?;
        image_layout.steps.push(steps);
        config = layout::image_config(
            Some(&config),
            &image_layout.platform,
            &layer.overrides,
            epoch,
        )
        .map_err(config_error)?;
    }
    let loader_check = over.loader.map(|need| LoaderCheck {
        below: layout::base_definition(&image_layout).expect("the Dockerfile image is below"),
        need,
    });
    let mut laid_out = layout::definition(&image_layout);
    if packing.no_cache {
        laid_out.ignore_cache();
    }
    let definition = (packing.definition(gateway.caps(), laid_out, image_layout)).await?;
    let image = solve_image(gateway, definition, loader_check).await?;
    Ok((image, config))
}

/// The definition the frontend's result was solved from, which our LLB is built on.
fn built_definition(result: &ResultRef, name: &str) -> Result<Llb, FrontendError> {
    let Some(definition) = result.definition() else {
        return Err(FrontendError(format!(
            "`{name}` is a Dockerfile image, and this daemon does not return the definition of a Dockerfile's \
             result, which layers on it are built on (Docker 23+ / BuildKit v0.10+ do)"
        )));
    };
    if DefinitionBuilder::default().inline(definition).is_none() {
        return Err(FrontendError(format!(
            "the daemon returned the definition of Dockerfile image `{name}` without its result"
        )));
    }
    Ok(Llb(definition.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildkit::llb;
    use crate::plan::Platform;
    use hive_proto::gateway::Ref;
    use hive_proto::pb;

    fn solved() -> pb::Definition {
        let platform = llb::platform(&Platform::parse("linux/amd64").unwrap());
        llb::file_on_scratch("/f", b"x", platform)
    }

    #[test]
    fn layers_go_on_the_definition_the_daemon_returned_without_its_source_map() {
        let with_map = pb::Definition {
            source: Some(pb::Source::default()),
            ..solved()
        };
        let result = ResultRef::of_ref(Ref {
            id: "r".into(),
            def: Some(with_map),
        });
        assert_eq!(built_definition(&result, "api").unwrap(), Llb(solved()));
    }

    #[test]
    fn a_result_without_a_usable_definition_is_refused_in_words() {
        let bare = ResultRef::of_id("r".into());
        let error = built_definition(&bare, "api").unwrap_err();
        assert!(
            error.0.starts_with(
                "`api` is a Dockerfile image, and this daemon does not return the definition of a \
                 Dockerfile's result"
            ),
            "{error}"
        );
        let no_terminal = pb::Definition {
            def: solved().def[..1].to_vec(),
            ..Default::default()
        };
        let result = ResultRef::of_ref(Ref {
            id: "r".into(),
            def: Some(no_terminal),
        });
        let error = built_definition(&result, "api").unwrap_err();
        assert_eq!(
            error.0,
            "the daemon returned the definition of Dockerfile image `api` without its result"
        );
    }
}
