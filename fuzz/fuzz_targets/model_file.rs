//! Any bytes as a convlearn model file or checkpoint: its metadata checked, the network built and
//! loaded, the training state and optimiser record checked, or an error; never a crash or an
//! allocation of what crafted metadata claims.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = common::scratch_file("model.safetensors", data);
    let device = convlearn::device::inference_device();
    let _ = convlearn::model_file::SavedModel::load(&path, &device);
    let _ = convlearn::learner::read_checkpoint(&path, &device.clone().autodiff());
});
