//! Where labelled images come from: a folder tree or a labels CSV beside a folder of images.

use std::path::{Path, PathBuf};

use super::DataSplit;
use crate::error::Result;

/// A labelled data set on disk.
#[derive(Clone, Debug, PartialEq)]
pub enum Dataset {
    /// `train/<class>/…` + `valid/<class>/…` (or `val/`), or `<class>/…` split at random.
    Folder(PathBuf),
    /// fastai's CSV: `image_name,tags` (space-separated tags), images in `images`, each named
    /// `<image_name><suffix>`; split at random.
    Csv {
        /// The labels file.
        labels: PathBuf,
        /// The folder of images.
        images: PathBuf,
        /// Appended to each image name (e.g. `.jpg`).
        suffix: String,
    },
}

impl Dataset {
    /// Training and validation lists (`valid_pct` and `seed` apply where no split is given).
    pub fn split(&self, valid_pct: f64, seed: u64) -> Result<DataSplit> {
        match self {
            Dataset::Folder(dir) => DataSplit::open(dir, valid_pct, seed),
            Dataset::Csv {
                labels,
                images,
                suffix,
            } => DataSplit::from_csv(labels, images, suffix, valid_pct, seed),
        }
    }

    /// A short name for output files: the folder's (or the images folder's parent's) name.
    pub fn name(&self) -> String {
        let path: &Path = match self {
            Dataset::Folder(dir) => dir,
            Dataset::Csv { labels, .. } => labels.parent().unwrap_or(labels),
        };
        path.canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| "data".into())
    }
}
