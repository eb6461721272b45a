//! Reading named tensors from `.safetensors` files and PyTorch `.pth`/`.pt` checkpoints (whose
//! pickles are checked to name nothing but PyTorch's tensor-rebuilding functions and then read by a
//! reader that never executes code), with errors naming the file and tensor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;

use crate::error::{Error, Result};

mod pickle_scan;
mod pytorch;

/// What a weights file is, told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// An 8-byte little-endian header length that fits the file, then the header's `{`.
    Safetensors,
    /// `PK\x03\x04` (or an empty archive's `PK\x05\x06`): `torch.save` since PyTorch 1.6.
    PytorchZip,
    /// A pickle (`\x80` and a protocol 2–5): legacy `torch.save`, or a bare pickle.
    Pickle,
}

impl Kind {
    fn of(path: &Path) -> Result<Self> {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut head = Vec::with_capacity(9);
        f.by_ref()
            .take(9)
            .read_to_end(&mut head)
            .map_err(|e| Error::io(path, e))?;
        if head.len() == 9 && head[8] == b'{' {
            let header = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
            if header.checked_add(8).is_some_and(|end| end <= len) {
                return Ok(Kind::Safetensors);
            }
            return Err(Error::format(
                path,
                format!("safetensors header claims {header} bytes, but the file has {len}"),
            ));
        }
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            return Ok(Kind::PytorchZip);
        }
        if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
            return Ok(Kind::Pickle);
        }
        Err(Error::format(
            path,
            format!(
                "is not a weights file ({len} bytes): neither safetensors (a header length, then \
                 '{{'), a PyTorch zip archive ('PK') nor a pickle (0x80)"
            ),
        ))
    }
}

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
        match Kind::of(path)? {
            Kind::Safetensors => Self::read_safetensors(path),
            kind => Ok(Self {
                path: path.to_path_buf(),
                tensors: pytorch::read(path, kind == Kind::PytorchZip)?,
                metadata: BTreeMap::new(),
            }),
        }
    }

    fn read_safetensors(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
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
