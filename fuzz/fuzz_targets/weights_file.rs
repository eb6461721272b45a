//! Any bytes as a weights file (`.safetensors`, a `.pth` zip archive, a legacy or bare pickle):
//! an error or tensors, never a crash, a hang or an allocation beyond the file's bound.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = common::scratch_file("weights.pth", data);
    if let Ok(file) = convlearn::tensor_file::TensorFile::read(&path) {
        let floats: usize = file.tensors.values().map(|t| t.values.len()).sum();
        assert!(
            floats * 4 <= 8 * data.len() + (4 << 20),
            "{floats} floats from {} bytes",
            data.len()
        );
    }
});
