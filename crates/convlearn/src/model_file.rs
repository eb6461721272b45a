//! The one-file model: weights as safetensors, with everything needed to use them (architecture,
//! classes, input shape, normalisation) as JSON in the file's metadata under the key `convlearn`.

use std::path::Path;

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::data::{Augment, Preprocess};
use crate::error::{Error, Result};
use crate::models::{ArchSpec, Network, PretrainedWeights};

/// The metadata key under which [`ModelMeta`] is stored.
pub const META_KEY: &str = "convlearn";

/// Version of the metadata layout.
pub const FORMAT_VERSION: u32 = 1;

/// The largest header read (safetensors' own limit).
const HEADER_MAX: u64 = 100_000_000;

/// Tensors whose name starts with this are not weights but state stored beside them (a
/// checkpoint's optimiser moments); loading a model ignores them.
pub const STATE_TENSOR_PREFIX: &str = "convlearn.";

/// What a saved model needs besides its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The network's exact description.
    pub arch: ArchSpec,
    /// Class names, indexed by output.
    pub classes: Vec<String>,
    /// How inputs are prepared.
    pub preprocess: Preprocess,
    /// Several tags per image (sigmoid outputs) rather than one class (softmax).
    #[serde(default)]
    pub multi_label: bool,
    /// Multi-label: a tag is predicted when its probability exceeds this (chosen on the
    /// validation set by the F2 sweep).
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// The training augmentation, reused for test-time augmentation.
    #[serde(default)]
    pub augment: Augment,
}

fn default_threshold() -> f32 {
    0.5
}

/// The threshold a multi-label model trains at before the sweep picks its own (fastai's Planet
/// threshold).
pub const MULTI_LABEL_TRAINING_THRESHOLD: f32 = 0.2;

impl ModelMeta {
    /// Metadata of a freshly built model; multi-label models start at
    /// [`MULTI_LABEL_TRAINING_THRESHOLD`].
    pub fn new(
        arch: ArchSpec,
        classes: Vec<String>,
        preprocess: Preprocess,
        multi_label: bool,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            arch,
            classes,
            preprocess,
            multi_label,
            threshold: if multi_label {
                MULTI_LABEL_TRAINING_THRESHOLD
            } else {
                default_threshold()
            },
            augment: Augment::None,
        }
    }
}

/// A network with its metadata.
pub struct SavedModel {
    /// Metadata.
    pub meta: ModelMeta,
    /// The network.
    pub network: Network,
}

impl SavedModel {
    /// Writes the model to `path` atomically and durably ([`crate::output_file`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_with(path, &[], &[])
    }

    /// Like [`SavedModel::save`], with extra metadata entries (e.g. a checkpoint's training state)
    /// and extra byte tensors, each named with [`STATE_TENSOR_PREFIX`] (e.g. the optimiser's
    /// moments), all in the one file.
    pub fn save_with(
        &self,
        path: &Path,
        extra: &[(&str, String)],
        extra_bytes: &[(&str, &[u8])],
    ) -> Result<()> {
        let cannot =
            |e: &dyn std::fmt::Display| Error::format(path, format!("cannot write model: {e}"));
        let json = serde_json::to_string(&self.meta).expect("metadata serialises");
        let store = |store: SafetensorsStore| {
            let mut store = store
                .skip_enum_variants(true)
                .metadata(META_KEY, json.clone());
            for (key, value) in extra {
                store = store.metadata(*key, value.clone());
            }
            store
        };
        if extra_bytes.is_empty() {
            return crate::output_file::write_atomically(path, |tmp| {
                self.network
                    .save_into(&mut store(SafetensorsStore::from_file(tmp)))
                    .map_err(|e| cannot(&e))
            });
        }
        // burn writes the weights (its names, its dtypes); the extra tensors join them in a
        // second serialisation of the same container.
        let mut weights = store(SafetensorsStore::from_bytes(None));
        self.network
            .save_into(&mut weights)
            .map_err(|e| cannot(&e))?;
        let bytes = weights.get_bytes().map_err(|e| cannot(&e))?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| cannot(&e))?;
        let metadata = header.metadata().clone();
        let parsed = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| cannot(&e))?;
        let mut views = parsed.tensors();
        for (name, data) in extra_bytes {
            if !name.starts_with(STATE_TENSOR_PREFIX) {
                return Err(Error::Invalid(format!(
                    "extra tensor '{name}' must be named '{STATE_TENSOR_PREFIX}…' (it is not a weight)"
                )));
            }
            let view = safetensors::tensor::TensorView::new(
                safetensors::Dtype::U8,
                vec![data.len()],
                data,
            )
            .map_err(|e| cannot(&e))?;
            views.push((name.to_string(), view));
        }
        let container = safetensors::serialize(views, metadata).map_err(|e| cannot(&e))?;
        crate::output_file::write_bytes(path, &container)
    }

    /// The bytes of an extra tensor ([`SavedModel::save_with`]) of a model file, `None` when absent.
    pub fn read_state_tensor(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let parsed = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
            Error::format(
                path,
                format!("not a convlearn model (safetensors) file: {e}"),
            )
        })?;
        match parsed.tensor(name) {
            Ok(view) if view.dtype() == safetensors::Dtype::U8 => Ok(Some(view.data().to_vec())),
            Ok(view) => Err(Error::format(
                path,
                format!("tensor '{name}' is {:?}, not bytes", view.dtype()),
            )),
            Err(_) => Ok(None),
        }
    }

    /// A metadata entry of a model file (`None` when absent). Only the file's header is read.
    pub fn read_metadata_entry(path: &Path, key: &str) -> Result<Option<String>> {
        use std::io::Read;
        let not_model = |e: &dyn std::fmt::Display| {
            Error::format(
                path,
                format!("not a convlearn model (safetensors) file: {e}"),
            )
        };
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(|e| not_model(&e))?;
        let n = u64::from_le_bytes(n);
        if n > len.saturating_sub(8) || n > HEADER_MAX {
            return Err(not_model(&format!("its header claims {n} bytes")));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header).map_err(|e| not_model(&e))?;
        let header: std::collections::HashMap<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| not_model(&e))?;
        let entry = header
            .get("__metadata__")
            .and_then(|m| m.get(key))
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| not_model(&"metadata values are strings"))
            })
            .transpose()?;
        Ok(entry)
    }

    /// Reads only the metadata of a model file, checked against itself and the file's size
    /// ([`crate::model_check::check_meta`]).
    pub fn read_meta(path: &Path) -> Result<ModelMeta> {
        let json = Self::read_metadata_entry(path, META_KEY)?.ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "has no '{META_KEY}' metadata: it is a bare weights file, not a convlearn model"
                ),
            )
        })?;
        let meta: ModelMeta = serde_json::from_str(&json)
            .map_err(|e| Error::format(path, format!("model metadata is malformed: {e}")))?;
        if meta.format_version > FORMAT_VERSION {
            return Err(Error::format(
                path,
                format!(
                    "model format {} is newer than this convlearn ({FORMAT_VERSION})",
                    meta.format_version
                ),
            ));
        }
        let file_len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        crate::model_check::check_meta(&meta, path, file_len)?;
        Ok(meta)
    }

    /// The network of pretrained `weights` exactly as published (ImageNet classifier included),
    /// ready to predict, with their class names (`<weights>.labels.txt`) and preprocessing.
    pub fn imagenet(weights: &PretrainedWeights, device: &Device) -> Result<Self> {
        let arch = weights.imagenet_arch()?;
        let classes = match &weights.labels {
            Some(l) if l.len() == arch.classes() => l.clone(),
            _ => (0..arch.classes()).map(|i| format!("class {i}")).collect(),
        };
        Ok(Self {
            network: weights.build(&arch, device)?,
            meta: ModelMeta::new(
                arch,
                classes,
                weights.preprocess(weights.native_size),
                false,
            ),
        })
    }

    /// Loads a model; tensors that are missing, misshaped or unexpected are all listed in the error.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let meta = Self::read_meta(path)?;
        let mut network = Network::new(&meta.arch, device)?;
        let mut store = SafetensorsStore::from_file(path)
            .skip_enum_variants(true)
            .validate(false)
            .allow_partial(true);
        let result = network
            .load_from(&mut store)
            .map_err(|e| Error::format(path, format!("cannot read weights: {e}")))?;
        let mut problems: Vec<String> = result.errors.iter().map(ToString::to_string).collect();
        problems.extend(
            result
                .missing
                .iter()
                .map(|(name, _)| format!("missing tensor '{name}'")),
        );
        problems.extend(
            result
                .unused
                .iter()
                .filter(|name| !name.starts_with(STATE_TENSOR_PREFIX))
                .map(|name| format!("unexpected tensor '{name}'")),
        );
        if !problems.is_empty() {
            return Err(Error::Weights(format!(
                "{}: the weights do not fit architecture '{}' ({:?}):\n  {}",
                path.display(),
                meta.arch.name(),
                meta.arch,
                problems.join("\n  ")
            )));
        }
        Ok(Self { meta, network })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors-shaped file: the header's length, then `header`, then `tail`.
    fn file(dir: &Path, header_len: u64, header: &[u8], tail: &[u8]) -> std::path::PathBuf {
        let path = dir.join("m.safetensors");
        let mut bytes = header_len.to_le_bytes().to_vec();
        bytes.extend(header);
        bytes.extend(tail);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn metadata_is_read_from_the_header_alone_and_lengths_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let header = br#"{"__metadata__":{"k":"v"}}"#;
        let path = file(dir.path(), header.len() as u64, header, &[0; 64]);
        assert_eq!(
            SavedModel::read_metadata_entry(&path, "k")
                .unwrap()
                .as_deref(),
            Some("v")
        );
        assert_eq!(
            SavedModel::read_metadata_entry(&path, "other").unwrap(),
            None
        );
        // a length past the end, or past safetensors' limit, is refused before anything is allocated
        for claimed in [header.len() as u64 + 65, u64::MAX, 200_000_000] {
            let path = file(dir.path(), claimed, header, &[0; 64]);
            let err = SavedModel::read_metadata_entry(&path, "k")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("claims {claimed} bytes")), "{err}");
        }
        let path = file(dir.path(), 11, br#"{"__metadata__":{"k":3}}"#, &[]);
        assert!(SavedModel::read_metadata_entry(&path, "k").is_err());
    }
}
