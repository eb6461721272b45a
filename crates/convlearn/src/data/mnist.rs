//! MNIST from its four IDX files (`train-images-idx3-ubyte[.gz]` …) in one directory.

use std::path::{Path, PathBuf};

use super::{ImageSet, read_idx_images, read_idx_labels};
use crate::error::{Error, Result};

/// MNIST's class names.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// MNIST's training (60 000) and test (10 000) sets.
pub struct Mnist {
    /// Training images.
    pub train: ImageSet,
    /// Test images.
    pub test: ImageSet,
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::format(
        dir,
        format!("no {stem}.gz or {stem} in this directory (expected MNIST's IDX files)"),
    ))
}

fn load_split(dir: &Path, prefix: &str) -> Result<ImageSet> {
    let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (n, rows, cols, pixels) = read_idx_images(&images_path)?;
    let labels = read_idx_labels(&labels_path)?;
    if labels.len() != n {
        return Err(Error::format(
            &labels_path,
            format!(
                "holds {} labels but {} holds {n} images",
                labels.len(),
                images_path.display()
            ),
        ));
    }
    if let Some(bad) = labels.iter().find(|&&l| l > 9) {
        return Err(Error::format(
            &labels_path,
            format!("label {bad} is not a digit 0–9"),
        ));
    }
    ImageSet::new(
        1,
        rows,
        cols,
        pixels,
        labels.into_iter().map(usize::from).collect::<Vec<_>>(),
        MNIST_CLASSES.iter().map(ToString::to_string).collect(),
    )
}

impl Mnist {
    /// Loads both splits from `dir` (or `dir/mnist` when `dir` is the shared data folder).
    pub fn load(dir: &Path) -> Result<Self> {
        let dir = if dir.join("mnist").is_dir() {
            dir.join("mnist")
        } else {
            dir.to_path_buf()
        };
        Ok(Self {
            train: load_split(&dir, "train")?,
            test: load_split(&dir, "t10k")?,
        })
    }
}
