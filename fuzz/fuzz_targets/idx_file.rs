//! Any bytes as an IDX image or label file (raw or gzip): what the header promises, or an error.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = common::scratch_file("idx", data);
    let _ = convlearn::data::read_idx_images(&path);
    let _ = convlearn::data::read_idx_labels(&path);
});
