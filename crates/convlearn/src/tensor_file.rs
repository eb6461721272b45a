//! Reading named tensors from `.safetensors` files and PyTorch `.pth`/`.pt` checkpoints (through a
//! restricted pickle reader that never executes code and refuses anything but plain tensors), with
//! errors naming the file and tensor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;

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
    /// Reads every tensor of `path`: a safetensors file, or a PyTorch checkpoint (zip or legacy
    /// pickle; a state dict, or a dict holding one under `state_dict` or `model`). Floating and
    /// integer tensors are converted to `f32`.
    pub fn read(path: &Path) -> Result<Self> {
        let mut head = [0u8; 8];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
            if n < 8 {
                return Err(Error::format(
                    path,
                    format!("is {n} bytes: too short for a weights file"),
                ));
            }
        }
        let is_zip = head.starts_with(b"PK");
        let is_pickle = head[0] == 0x80 || head.starts_with(&[0x8a, 0x0a]);
        if is_zip || is_pickle {
            Self::read_pytorch(path)
        } else {
            Self::read_safetensors(path)
        }
    }

    fn read_safetensors(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::format(path, format!("not a safetensors or PyTorch file: {e}")))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let dtype = Scalar::named(&format!("{:?}", view.dtype())).ok_or_else(|| {
                Error::format(
                    path,
                    format!("tensor '{name}' has unsupported dtype {:?}", view.dtype()),
                )
            })?;
            tensors.insert(
                name,
                HostTensor {
                    shape: view.shape().to_vec(),
                    values: dtype.decode(view.data()),
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

    fn read_pytorch(path: &Path) -> Result<Self> {
        use pytorch_reader::PytorchReader;
        let mut reader = PytorchReader::new(path)
            .map_err(|e| Error::format(path, format!("not a readable PyTorch checkpoint: {e}")))?;
        if reader.is_empty() {
            for key in ["state_dict", "model"] {
                if let Ok(r) = PytorchReader::with_top_level_key(path, key)
                    && !r.is_empty()
                {
                    reader = r;
                    break;
                }
            }
        }
        let mut tensors = BTreeMap::new();
        for (name, t) in reader.tensors() {
            let dtype = Scalar::named(&format!("{:?}", t.dtype())).ok_or_else(|| {
                Error::format(
                    path,
                    format!("tensor '{name}' has unsupported dtype {:?}", t.dtype()),
                )
            })?;
            let bytes = t
                .read()
                .map_err(|e| Error::format(path, format!("cannot read tensor '{name}': {e}")))?;
            tensors.insert(
                name.clone(),
                HostTensor {
                    shape: t.shape().to_vec(),
                    values: dtype.decode(&bytes),
                },
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            metadata: BTreeMap::new(),
        })
    }

    /// The tensor called `name`, or an error naming the file and the tensor.
    pub fn get(&self, name: &str) -> Result<&HostTensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::format(&self.path, format!("has no tensor '{name}'")))
    }
}

/// Element types the readers convert from.
#[derive(Clone, Copy)]
enum Scalar {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    U8,
}

impl Scalar {
    /// The element type called `name` (as both readers' `Debug` spell it: `F32`, `BF16`, `I64`…).
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "F32" => Scalar::F32,
            "F64" => Scalar::F64,
            "F16" => Scalar::F16,
            "BF16" => Scalar::BF16,
            "I64" => Scalar::I64,
            "I32" => Scalar::I32,
            "U8" => Scalar::U8,
            _ => return None,
        })
    }

    fn decode(self, data: &[u8]) -> Vec<f32> {
        match self {
            Scalar::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            Scalar::F64 => data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            Scalar::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes(b.try_into().unwrap()).to_f32())
                .collect(),
            Scalar::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes(b.try_into().unwrap()).to_f32())
                .collect(),
            Scalar::I64 => data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            Scalar::I32 => data
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            Scalar::U8 => data.iter().map(|&b| b as f32).collect(),
        }
    }
}
