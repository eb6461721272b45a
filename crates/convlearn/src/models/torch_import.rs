//! Loading PyTorch weights into a [`Cnn`]: `conv1…convN` and `fc1…fcM`, as a PyTorch module with
//! `nn.Conv2d` and `nn.Linear` attributes of those names saves them.

use super::{Cnn, load_named_weights};
use crate::error::Result;
use crate::tensor_file::TensorFile;

/// The PyTorch name of a [`Cnn`] parameter path: `convs.0.conv.weight` → `conv1.weight`,
/// `dense.1.bias` → `fc2.bias`.
fn torch_name(path: &str, prefix: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('.').collect();
    match parts.as_slice() {
        ["convs", i, "conv", leaf] => Some(format!(
            "{prefix}conv{}.{leaf}",
            i.parse::<usize>().ok()? + 1
        )),
        ["dense", j, leaf] => Some(format!("{prefix}fc{}.{leaf}", j.parse::<usize>().ok()? + 1)),
        _ => None,
    }
}

/// Replaces the weights of `cnn` with tensors `{prefix}conv{i}.weight|bias` and `{prefix}fc{j}.weight|bias`
/// from `file`. Every missing or misshaped tensor is listed in the error, with unused `{prefix}` tensors.
pub fn load_torch_cnn_weights(cnn: Cnn, file: &TensorFile, prefix: &str) -> Result<Cnn> {
    load_named_weights(
        cnn,
        file,
        |name| !name.starts_with(prefix),
        |path| torch_name(path, prefix),
    )
}
