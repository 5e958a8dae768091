//! Our layers handed to the daemon packed: each layer a tar we write (and compress, as the image asks) ourselves, wrapped in a one-layer OCI
//! image that the session's content store serves to an `oci-layout://` source, and merged onto what is below it.
//! The daemon then neither copies, snapshots, diffs nor compresses our files: it exports the blob as it is. A daemon
//! without `oci-layout` sources or merge ops (Docker 20.10) gets the definition with copies instead.

use std::path::PathBuf;
use std::sync::Arc;

use super::gateway::{Caps, FrontendError};
use super::layout::{self, ImageLayout, Llb, PackedRef};
use super::pack::{self, LayerCompression, PackedLayer, Parents};
use super::session::{Blob, ContentBlobs};

/// What one solve needs to pack its layers.
#[derive(Debug, Clone)]
pub(super) struct Packing {
    /// The blobs the session serves; the packed layers go in here.
    pub(super) content: Arc<ContentBlobs>,
    /// Where the layers are written while the solve runs.
    pub(super) dir: PathBuf,
    /// `--no-cache`: the packed definition ignores the cache too.
    pub(super) no_cache: bool,
    /// The image, for the sources' names in the progress output.
    pub(super) image: String,
    /// Whether to pack at all (a retry after a failed packed transfer does not).
    pub(super) enabled: bool,
    /// How the packed layers are compressed.
    pub(super) compression: LayerCompression,
}

impl Packing {
    /// The platform's definition: its layers packed when the daemon takes them so, else `laid_out` as it is.
    pub(super) async fn definition(
        &self,
        caps: &Caps,
        laid_out: Llb,
        layout: ImageLayout,
    ) -> Result<Llb, FrontendError> {
        if !(self.enabled && caps.packed_layers()) {
            return Ok(laid_out);
        }
        let packing = self.clone();
        let mut definition = tokio::task::spawn_blocking(move || packing.pack(&layout))
            .await
            .map_err(|err| FrontendError(format!("packing the layers failed: {err}")))??;
        if self.no_cache {
            definition.ignore_cache();
        }
        Ok(definition)
    }

    /// Packs every layer of `layout` (CPU and disk work: run off the async threads) and adds its blobs to the
    /// session's store.
    fn pack(&self, layout: &ImageLayout) -> Result<Llb, FrontendError> {
        let mut packed = Vec::with_capacity(layout.layers.len());
        for (index, inputs) in layout.layers.iter().enumerate() {
            if inputs.iter().all(|input| input.entries.is_empty()) {
                packed.push(None);
                continue;
            }
            let steps = layout
                .steps
                .get(index)
                .is_some_and(|steps| !steps.is_empty());
            let parents = if layout.base.is_none() && packed.iter().all(Option::is_none) && !steps {
                Parents::Written
            } else {
                Parents::Omitted
            };
            let owner_and_time = (layout.uid, layout.gid, layout.epoch);
            let layer =
                pack::pack_layer(inputs, parents, owner_and_time, self.compression, &self.dir)
                    .map_err(|err| FrontendError(err.to_string()))?;
            packed.push(Some(self.serve(layer, layout)));
        }
        Ok(layout::packed_definition(layout, &packed))
    }

    /// Puts a packed layer, its config and its manifest in the session's store.
    fn serve(&self, layer: PackedLayer, layout: &ImageLayout) -> PackedRef {
        let image = pack::layer_image(&layer, &layout.platform);
        self.content.insert(
            layer.digest.clone(),
            Blob::File {
                path: layer.path.clone(),
                size: layer.size,
            },
        );
        self.content
            .insert(image.config_digest.clone(), Blob::Bytes(image.config));
        self.content
            .insert(image.manifest_digest.clone(), Blob::Bytes(image.manifest));
        PackedRef {
            name: self.image.clone(),
            manifest_digest: image.manifest_digest,
        }
    }
}
