//! Any bytes as fastai's labels CSV, over a folder holding images `a.jpg` and `b`: a split or an
//! error listing the bad rows.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let csv = common::scratch_file("labels.csv", data);
    let images = csv.with_file_name("images");
    if !images.is_dir() {
        std::fs::create_dir_all(&images).unwrap();
        std::fs::write(images.join("a.jpg"), b"x").unwrap();
        std::fs::write(images.join("b"), b"x").unwrap();
    }
    for (suffix, pct) in [("", 0.2), (".jpg", 0.5)] {
        let _ = convlearn::data::DataSplit::from_csv(&csv, &images, suffix, pct, 1);
    }
});
