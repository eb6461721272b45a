//! Loading weights saved by PyTorch (or anyone using PyTorch's names) into any of our modules.
//!
//! A [`ModuleMapper`] walks the module, builds each parameter's path from the field names (enum
//! variants leave no trace, `Vec` items are their index), turns it into the PyTorch name with the
//! architecture's rename function, checks the shape and replaces the value. BatchNorm's `gamma`/`beta`
//! are PyTorch's `weight`/`bias`; `Linear` weights are transposed (PyTorch `[out, in]`, burn
//! `[in, out]`). Everything missing, misshaped or left over is reported together; PyTorch's
//! `num_batches_tracked` counters are ignored.

use std::collections::BTreeSet;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};

use super::param_path::PathStack;
use crate::error::{Error, Result};
use crate::tensor_file::TensorFile;

struct Loader<'a, F: Fn(&str) -> Option<String>> {
    file: &'a TensorFile,
    rename: F,
    stack: PathStack,
    used: BTreeSet<String>,
    problems: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Loader<'_, F> {
    /// The path of the parameter being visited, with BatchNorm leaves in PyTorch's words, and
    /// whether it is a `Linear` weight (stored transposed).
    fn path(&self) -> (String, bool) {
        let path = self.stack.path();
        let (leaf, container) = self.stack.leaf();
        let path = match (container, leaf) {
            ("Struct:BatchNorm", "gamma") => format!("{}weight", &path[..path.len() - 5]),
            ("Struct:BatchNorm", "beta") => format!("{}bias", &path[..path.len() - 4]),
            _ => path,
        };
        (path, container == "Struct:Linear" && leaf == "weight")
    }
}

impl<F: Fn(&str) -> Option<String>> ModuleMapper for Loader<'_, F> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (path, transpose) = self.path();
        let Some(name) = (self.rename)(&path) else {
            return param;
        };
        let dims = param.lazy_shape().dims::<D>();
        let mut expected: Vec<usize> = dims.to_vec();
        if transpose {
            expected.reverse();
        }
        let Some(t) = self.file.tensors.get(&name) else {
            self.problems
                .push(format!("missing '{name}' (expected shape {expected:?})"));
            return param;
        };
        self.used.insert(name.clone());
        if t.shape != expected {
            self.problems.push(format!(
                "'{name}' has shape {:?}, expected {expected:?}",
                t.shape
            ));
            return param;
        }
        let values = t.values.clone();
        param.map(|old| {
            let device = old.device();
            let require_grad = old.is_require_grad();
            let shape: [usize; D] = expected.clone().try_into().expect("rank D");
            let mut new = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
            if transpose {
                new = new.transpose();
            }
            new.set_require_grad(require_grad)
        })
    }
}

/// Replaces every parameter of `module` with the tensor `rename(path)` of `file` (a `None` from
/// `rename` leaves that parameter as it is). Tensors of the file that were not used are reported too,
/// unless `unused_ok` accepts their name. All problems come in one error naming the file.
pub fn load_named_weights<M: Module>(
    module: M,
    file: &TensorFile,
    unused_ok: impl Fn(&str) -> bool,
    rename: impl Fn(&str) -> Option<String>,
) -> Result<M> {
    let mut loader = Loader {
        file,
        rename,
        stack: PathStack::default(),
        used: BTreeSet::new(),
        problems: Vec::new(),
    };
    let module = module.map(&mut loader);
    let mut problems = loader.problems;
    for (name, t) in &file.tensors {
        if !unused_ok(name) && !loader.used.contains(name) && !name.ends_with("num_batches_tracked")
        {
            problems.push(format!("unexpected tensor '{name}' {:?}", t.shape));
        }
    }
    if problems.is_empty() {
        Ok(module)
    } else {
        Err(Error::Weights(format!(
            "{}: the weights do not fit the model ({} problems):\n  {}",
            file.path.display(),
            problems.len(),
            problems.join("\n  ")
        )))
    }
}
