//! Any bytes as a picture: decoded under the limits and turned into planes, or an error.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = common::scratch_file("picture", data);
    if let Ok(image) = convlearn::data::load_image(&path) {
        let _ = convlearn::data::image_to_maps(&image, 3, Some((32, 32)));
        let _ = convlearn::data::image_to_maps(&image, 1, None);
    }
});
