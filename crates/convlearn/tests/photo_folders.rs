//! Folders of photos: both layouts, the seeded split, unreadable files skipped and counted,
//! grayscale/RGBA converted, the evaluation crop, and the size warning.

use convlearn::data::{Augment, Crop, DataSplit, ImageSource, PhotoSet};
use convlearn::recipes::size_warning;

fn write_png(path: &std::path::Path, gray: bool, v: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if gray {
        image::GrayImage::from_pixel(40, 30, image::Luma([v]))
            .save(path)
            .unwrap();
    } else {
        image::RgbaImage::from_pixel(30, 40, image::Rgba([v, 0, 255 - v, 128]))
            .save(path)
            .unwrap();
    }
}

#[test]
fn train_valid_layout_with_a_broken_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (split, n) in [("train", 3), ("val", 2)] {
        for (c, class) in ["ants", "bees"].iter().enumerate() {
            for i in 0..n {
                write_png(
                    &d.join(split).join(class).join(format!("{i}.png")),
                    c == 0,
                    (40 * i) as u8,
                );
            }
        }
    }
    std::fs::write(d.join("train/ants/broken.gif"), b"GIF89a\x01\x00").unwrap();
    let split = DataSplit::open(d, 0.2, 1).unwrap();
    assert_eq!(split.classes, vec!["ants", "bees"]);
    assert_eq!((split.train.len(), split.valid.len()), (7, 4));
    let set = PhotoSet::decode(&split.train, &split.classes, 3, 16, "decoding", false)
        .with(Crop::None, Augment::SideOn);
    assert_eq!(set.len(), 6, "the broken file is skipped");
    assert_eq!(set.skipped.len(), 1);
    assert!(set.skipped[0].0.ends_with("broken.gif") && set.skipped[0].1.contains("broken.gif"));
    // grayscale and RGBA both become 3 × 16 × 16
    assert_eq!(set.item_shape(), [3, 16, 16]);
    let gray = set.item(1, None);
    assert!(
        (gray.get(0, 5, 5) - gray.get(2, 5, 5)).abs() < 1e-6,
        "gray → equal R, G, B"
    );
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    assert_eq!(set.item(4, Some(&mut rng)).data.len(), 3 * 16 * 16);
}

#[test]
fn one_folder_is_split_by_a_seeded_fraction() {
    let tmp = tempfile::tempdir().unwrap();
    for c in ["cats", "dogs"] {
        for i in 0..10 {
            write_png(&tmp.path().join(c).join(format!("{i}.png")), true, i as u8);
        }
    }
    let a = DataSplit::open(tmp.path(), 0.2, 7).unwrap();
    let b = DataSplit::open(tmp.path(), 0.2, 7).unwrap();
    assert_eq!((a.train.len(), a.valid.len()), (16, 4));
    assert_eq!(a.valid.paths, b.valid.paths, "same seed, same split");
    let c = DataSplit::open(tmp.path(), 0.2, 8).unwrap();
    assert_ne!(a.valid.paths, c.valid.paths, "another seed, another split");
    let err = DataSplit::open(&tmp.path().join("cats"), 0.2, 7)
        .unwrap_err()
        .to_string();
    assert!(err.contains("two class folders"), "{err}");
}

#[test]
fn crops_and_size_warning() {
    let img = image::DynamicImage::new_rgb8(200, 100);
    let c = Crop::EachSide { fraction: 0.875 }.apply(&img);
    assert_eq!((c.width(), c.height()), (175, 88));
    let c = Crop::Square { fraction: 0.875 }.apply(&img);
    assert_eq!((c.width(), c.height()), (88, 88));
    assert!(size_warning(64, 224).unwrap().contains("224"));
    assert!(size_warning(160, 224).is_none());
}

#[test]
fn photos_beyond_the_memory_budget_stream_from_disk_with_the_same_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    for (c, class) in ["a", "b"].iter().enumerate() {
        for i in 0..6u8 {
            // Varied pictures, so a mix-up between photos would show.
            let img = image::RgbImage::from_fn(50 + i as u32, 40, |x, y| {
                image::Rgb([(x * 5) as u8 ^ (40 * i), (y * 6) as u8, 100 * c as u8])
            });
            let p = tmp.path().join(class).join(format!("{i}.png"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            img.save(p).unwrap();
        }
    }
    std::fs::write(tmp.path().join("a/broken.png"), b"not a png").unwrap();
    let split = DataSplit::open(tmp.path(), 0.25, 3).unwrap();
    let one = 50 * 40 * 3; // bytes of the smallest decoded photo
    let decode = |budget| {
        PhotoSet::decode_within(&split.train, &split.classes, 3, 16, "", false, budget)
            .with(Crop::Square { fraction: 0.875 }, Augment::TopDown)
    };
    let (kept, partly, streamed) = (decode(usize::MAX), decode(3 * one + 10), decode(0));
    assert_eq!(kept.streamed(), 0);
    assert!(
        (1..kept.len()).contains(&partly.streamed()),
        "{}",
        partly.streamed()
    );
    assert_eq!(streamed.streamed(), streamed.len());
    // The broken file is skipped and counted whether or not it would have been kept.
    assert_eq!(kept.len() + kept.skipped.len(), split.train.len());
    assert_eq!(
        (streamed.len(), streamed.skipped.len()),
        (kept.len(), kept.skipped.len())
    );
    for i in 0..kept.len() {
        assert_eq!(
            kept.item(i, None).data,
            streamed.item(i, None).data,
            "photo {i}"
        );
        assert_eq!(
            kept.item(i, None).data,
            partly.item(i, None).data,
            "photo {i}"
        );
        let mut r1 = rand::SeedableRng::seed_from_u64(i as u64);
        let mut r2 = rand::SeedableRng::seed_from_u64(i as u64);
        assert_eq!(
            kept.item(i, Some(&mut r1)).data,
            streamed.item(i, Some(&mut r2)).data,
            "augmented photo {i}"
        );
    }
}

#[cfg(unix)]
#[test]
fn empty_class_folders_are_no_class_and_odd_names_work() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9");
    for class in [std::ffi::OsStr::new("ants"), odd] {
        for i in 0..4 {
            write_png(
                &d.join(class).join(format!("{i}.png")),
                true,
                (50 * i) as u8,
            );
        }
    }
    std::fs::create_dir_all(d.join("empty")).unwrap();
    std::fs::create_dir_all(d.join("also-empty/sub")).unwrap();
    // A link to the folder itself: a loop for anything that walks the tree.
    std::os::unix::fs::symlink(".", d.join("ants/loop")).unwrap();
    let split = DataSplit::open(d, 0.25, 3).unwrap();
    assert_eq!(split.classes, vec!["ants", "caf\u{fffd}"]);
    assert_eq!(split.train.len() + split.valid.len(), 8);
}

#[test]
fn a_streamed_photo_that_stops_decoding_is_left_out_and_counted() {
    use convlearn::data::{Normalization, Preprocess};
    use convlearn::learner::{FitConfig, Learner};
    use convlearn::model_file::ModelMeta;
    use convlearn::models::{ArchSpec, ModelPreset, Network};

    let tmp = tempfile::tempdir().unwrap();
    for (c, class) in ["dark", "light"].iter().enumerate() {
        for i in 0..8 {
            let v = if c == 0 { 20 + i } else { 200 + i };
            write_png(
                &tmp.path().join(class).join(format!("{i}.png")),
                true,
                v as u8,
            );
        }
    }
    let split = DataSplit::open(tmp.path(), 0.25, 1).unwrap();
    // a budget of 0 bytes: every photo is checked once, then read from disk each time
    let decode = |list| PhotoSet::decode_within(list, &split.classes, 3, 16, "", false, 0);
    let (train, valid) = (decode(&split.train), decode(&split.valid));
    assert_eq!((train.len(), valid.len(), train.streamed()), (12, 4, 12));
    // one training photo and one validation photo change on disk after they were checked
    std::fs::write(&train.paths[3], b"\x89PNG truncated").unwrap();
    std::fs::remove_file(&valid.paths[0]).unwrap();
    let why = train.try_item(3, None).unwrap_err();
    let name = train.paths[3]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(why.contains(&name), "the error names the file: {why}");
    assert!(train.try_item(4, None).is_ok());

    let device = convlearn::device::training_device();
    let spec = ModelPreset::SimpleCnn.spec(3, 16, 16, 2);
    let arch = ArchSpec::Plain {
        preset: "simple_cnn".into(),
        spec,
    };
    let preprocess = Preprocess {
        channels: 3,
        height: 16,
        width: 16,
        normalization: Normalization::identity(3),
        crop: Crop::None,
    };
    let meta = ModelMeta::new(arch.clone(), split.classes.clone(), preprocess, false);
    let mut learner = Learner::new(Network::new(&arch, &device).unwrap(), meta, device);
    let fit = FitConfig {
        epochs: 2,
        batch_size: 4,
        verbose: false,
        ..FitConfig::default()
    };
    learner.fit(&train, &valid, &fit).unwrap();
    for epoch in &learner.history.epochs {
        assert_eq!(
            epoch.unreadable, 2,
            "one in training, one in validation: {epoch:?}"
        );
        assert!(epoch.train_loss.is_finite() && epoch.valid_loss.is_finite());
    }
    // 3 batches per epoch, each trained (the one short of a photo on 3)
    assert_eq!(learner.history.batch_losses.len(), 6);
    // the final predictions keep one row per item, NaN for the unreadable one
    let preds = learner.predict_tta(&valid, 0, 4, 1);
    assert_eq!(preds.plain.len(), 4 * 2);
    assert!(preds.plain[..2].iter().all(|p| p.is_nan()));
    assert!(preds.plain[2..].iter().all(|p| p.is_finite()));

    // every photo of a batch gone: an error naming the batch and the file, not a crash
    for i in 0..train.len() {
        let _ = std::fs::remove_file(&train.paths[i]);
    }
    let err = learner.fit(&train, &valid, &fit).unwrap_err().to_string();
    assert!(
        err.contains("batch 1 of 3") && err.contains("can be read"),
        "{err}"
    );
}
