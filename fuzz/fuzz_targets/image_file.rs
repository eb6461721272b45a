//! Any bytes as a picture: decoded under the limits and turned into planes, or an error.
//!
//! The planes are made at a small size, and at full size only up to 4 Mpx: a 51-byte GIF may
//! honestly declare a 12 826 × 4 098 canvas (within the limits), and converting its 52 Mpx to
//! floats under AddressSanitizer outlasts the fuzzer's 10 s timeout without finding anything.
//! Decoding such a canvas and shrinking it still takes its time: a 38-byte GIF declaring
//! 12 926 × 2 576 took 2.1 s here alone and over 10 s beside other work, so campaigns and CI give
//! every input 30 s (`-timeout=30`); a real hang still trips it.
#![no_main]

mod common;

/// Pixels up to which the full-size conversion is fuzzed too.
const FULL_SIZE_MAX: u64 = 1 << 22;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = common::scratch_file("picture", data);
    if let Ok(image) = convlearn::data::load_image(&path) {
        let _ = convlearn::data::image_to_maps(&image, 3, Some((32, 32)));
        if u64::from(image.width()) * u64::from(image.height()) <= FULL_SIZE_MAX {
            let _ = convlearn::data::image_to_maps(&image, 1, None);
        }
    }
});
