//! A network's initial weights drawn from one seed: at once, and the same on every device.

use std::sync::{Mutex, PoisonError};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

use crate::error::Result;

/// Held while a seeded module draws its weights: flex's random generator is one for the whole
/// process, and a draw from another thread in between would give the module other weights.
static DRAWING: Mutex<()> = Mutex::new(());

/// The module `build` makes, with every weight it draws taken from flex's (the CPU's) generator
/// seeded with `seed`, all drawn before this returns, then forked to `device`.
///
/// The CPU draws for every device because each back-end's generator turns a seed into other
/// numbers (wgpu's are not flex's): this way one seed gives the same initial weights on the CPU
/// and on a GPU, and a run on one device can be compared with the same run on the other. burn
/// draws a parameter on its first use, not when the module is built; drawing them all here, under
/// a lock, means no other thread's use of the generator in between changes them. (Dropout still
/// draws on `device` as the network trains, from the seed of each step.)
pub fn build_seeded<M: Module>(
    seed: u64,
    device: &Device,
    build: impl FnOnce(&Device) -> Result<M>,
) -> Result<M> {
    let cpu = Device::flex().with_autodiff_context_from(device);
    let module = {
        let _only_us = DRAWING.lock().unwrap_or_else(PoisonError::into_inner);
        cpu.seed(seed);
        let module = build(&cpu)?;
        module.visit(&mut DrawNow);
        module
    };
    Ok(if *device == cpu {
        module
    } else {
        // `fork`, not `to_device`: a moved parameter would stay a node of the CPU's autodiff graph,
        // not a leaf of the device's, and a second backward pass through it would find the graph
        // consumed (burn's `Module::to_device` says so; seen on wgpu when a step left weights as
        // they were).
        module.fork(device)
    })
}

/// Draws the initial values of every parameter not used yet.
struct DrawNow;

impl ModuleVisitor for DrawNow {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}
