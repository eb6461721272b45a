//! Reading named tensors from a `.safetensors` file, with errors naming the file and tensor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A named tensor read into host memory as `f32`.
#[derive(Clone, Debug)]
pub struct HostTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// All tensors of one safetensors file, plus its metadata.
pub struct TensorFile {
    /// Where they came from (for error messages).
    pub path: PathBuf,
    /// Tensors by name (integer tensors converted to `f32`).
    pub tensors: BTreeMap<String, HostTensor>,
    /// The file's `__metadata__` strings.
    pub metadata: BTreeMap<String, String>,
}

impl TensorFile {
    /// Reads every tensor of `path` (F32, F64, I64, I32 and U8 are converted to `f32`).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                Dtype::I64 => data
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                Dtype::I32 => data
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                Dtype::U8 => data.iter().map(|&b| b as f32).collect(),
                other => {
                    return Err(Error::format(
                        path,
                        format!("tensor '{name}' has unsupported dtype {other:?}"),
                    ));
                }
            };
            tensors.insert(
                name,
                HostTensor {
                    shape: view.shape().to_vec(),
                    values,
                },
            );
        }
        let metadata = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            metadata,
        })
    }

    /// The tensor called `name`, or an error naming the file and the tensor.
    pub fn get(&self, name: &str) -> Result<&HostTensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::format(&self.path, format!("has no tensor '{name}'")))
    }
}
