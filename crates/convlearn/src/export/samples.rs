//! Sample inputs and convlearn's outputs for them, as NumPy `.npy` files, so any runtime that runs
//! an exported model can be checked against convlearn on exactly the same numbers.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::OnnxOptions;
use crate::error::Result;
use crate::host::values;
use crate::interpret::{model_input, read_model_image};
use crate::learner::probabilities;
use crate::model_file::SavedModel;

/// Inputs `[n, c, h, w]` (already normalised) and convlearn's outputs `[n, classes]` for them.
pub struct Samples {
    /// The inputs, row-major.
    pub inputs: Vec<f32>,
    /// Their shape.
    pub input_shape: [usize; 4],
    /// The model's outputs: logits, or probabilities when the export ends in them.
    pub outputs: Vec<f32>,
    /// Their shape.
    pub output_shape: [usize; 2],
}

/// `random` inputs drawn uniformly from [−2, 2] (seeded by `seed`), then each of `images` read and
/// normalised as `predict` reads it; and what `model` outputs for them as exported with `options`.
pub fn samples(
    model: &SavedModel,
    images: &[PathBuf],
    random: usize,
    seed: u64,
    options: &OnnxOptions,
    device: &Device,
) -> Result<Samples> {
    let p = &model.meta.preprocess;
    let per_item = p.channels * p.height * p.width;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut inputs: Vec<f32> = (0..random * per_item)
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    for path in images {
        let maps = read_model_image(model, path)?;
        inputs.extend(values(model_input(model, &maps, device)));
    }
    let n = random + images.len();
    let shape = [n, p.channels, p.height, p.width];
    let mut outputs = Vec::with_capacity(n * model.meta.classes.len());
    // one item at a time: memory stays that of one forward pass whatever n is
    for item in inputs.chunks(per_item) {
        let x = Tensor::from_data(
            TensorData::new(item.to_vec(), [1, p.channels, p.height, p.width]),
            device,
        );
        let logits = model.network.forward(x);
        outputs.extend(values(if options.probabilities {
            probabilities(logits, model.meta.multi_label)
        } else {
            logits
        }));
    }
    let classes = outputs.len() / n.max(1);
    Ok(Samples {
        inputs,
        input_shape: shape,
        outputs,
        output_shape: [n, classes],
    })
}

impl Samples {
    /// Writes `dir/input.npy` and `dir/output.npy` (float32), each atomically; `dir` is created.
    pub fn write(&self, dir: &Path) -> Result<[PathBuf; 2]> {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        let (input, output) = (dir.join("input.npy"), dir.join("output.npy"));
        crate::output_file::write_bytes(&input, &npy(&self.inputs, &self.input_shape))?;
        crate::output_file::write_bytes(&output, &npy(&self.outputs, &self.output_shape))?;
        Ok([input, output])
    }
}

/// NumPy's `.npy` format, version 1.0: magic, header length, a Python-literal header padded
/// with spaces to a multiple of 64 bytes, then the little-endian values.
pub fn npy(values: &[f32], shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::npy;

    #[test]
    fn npy_header_is_padded_to_64_bytes_and_describes_the_array() {
        let bytes = npy(&[1.0, -2.5], &[2]);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert_eq!(
            header.trim_end(),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
        );
        assert!(header.ends_with('\n'));
        assert_eq!(
            &bytes[10 + header_len..],
            [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat()
        );
    }
}
