//! Loading PyTorch weights into a [`Cnn`]: `conv1…convN` and `fc1…fcM`, as a PyTorch module with
//! `nn.Conv2d` and `nn.Linear` attributes of those names saves them. Linear weights are transposed
//! (PyTorch stores `[out, in]`, burn `[in, out]`).

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use super::Cnn;
use crate::error::{Error, Result};
use crate::tensor_file::TensorFile;

fn take<const D: usize>(
    file: &TensorFile,
    name: &str,
    expected: [usize; D],
    device: &Device,
    problems: &mut Vec<String>,
) -> Option<Tensor<D>> {
    match file.tensors.get(name) {
        None => {
            problems.push(format!("missing '{name}' (expected shape {expected:?})"));
            None
        }
        Some(t) if t.shape != expected => {
            problems.push(format!(
                "'{name}' has shape {:?}, expected {expected:?}",
                t.shape
            ));
            None
        }
        Some(t) => Some(Tensor::from_data(
            TensorData::new(t.values.clone(), expected),
            device,
        )),
    }
}

/// Replaces the weights of `cnn` with tensors `{prefix}conv{i}.weight|bias` and `{prefix}fc{j}.weight|bias`
/// from `file`. Every missing or misshaped tensor is listed in the error, with unused `{prefix}` tensors.
pub fn load_torch_cnn_weights(
    mut cnn: Cnn,
    file: &TensorFile,
    prefix: &str,
    device: &Device,
) -> Result<Cnn> {
    let mut problems = Vec::new();
    let mut used = Vec::new();
    for (i, block) in cnn.convs.iter_mut().enumerate() {
        let [o, c, kh, kw] = block.conv.weight.dims();
        let base = format!("{prefix}conv{}", i + 1);
        if let Some(w) = take(
            file,
            &format!("{base}.weight"),
            [o, c, kh, kw],
            device,
            &mut problems,
        ) {
            block.conv.weight = Param::from_tensor(w);
        }
        if let Some(b) = take(file, &format!("{base}.bias"), [o], device, &mut problems) {
            block.conv.bias = Some(Param::from_tensor(b));
        }
        used.extend([format!("{base}.weight"), format!("{base}.bias")]);
    }
    for (j, layer) in cnn.dense.iter_mut().enumerate() {
        let [inp, out] = layer.weight.dims();
        let base = format!("{prefix}fc{}", j + 1);
        if let Some(w) = take::<2>(
            file,
            &format!("{base}.weight"),
            [out, inp],
            device,
            &mut problems,
        ) {
            layer.weight = Param::from_tensor(w.transpose());
        }
        if let Some(b) = take(file, &format!("{base}.bias"), [out], device, &mut problems) {
            layer.bias = Some(Param::from_tensor(b));
        }
        used.extend([format!("{base}.weight"), format!("{base}.bias")]);
    }
    for name in file.tensors.keys().filter(|n| n.starts_with(prefix)) {
        if !used.contains(name) {
            problems.push(format!(
                "unexpected tensor '{name}' {:?}",
                file.tensors[name].shape
            ));
        }
    }
    if problems.is_empty() {
        Ok(cnn)
    } else {
        Err(Error::Weights(format!(
            "{}: the weights do not fit the model:\n  {}",
            file.path.display(),
            problems.join("\n  ")
        )))
    }
}
