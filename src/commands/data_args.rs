//! The data options shared by `train`, `lr-find` and `interpret`: a dataset name or folder, or a
//! labels CSV with its images, and how to split them.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use convlearn::data::{Dataset, ImageSet, Mnist, shapes_split, shared_data_dir};
use convlearn::recipes::{TransferConfig, scratch_photos};

/// Where the labelled images are.
#[derive(clap::Args, Clone, Debug)]
pub struct DataArgs {
    /// `mnist`, `shapes` (generated), or a folder of photos (`train/<class>/…` + `valid/<class>/…`,
    /// or `<class>/…` split by --valid-pct). Omit it when giving --csv.
    pub dataset: Option<String>,
    /// A labels CSV in fastai's format (`image_name,tags`, tags separated by spaces; several tags per
    /// image make the data multi-label). Needs --images.
    #[arg(
        long,
        value_name = "LABELS.csv",
        requires = "images",
        conflicts_with = "dataset"
    )]
    pub csv: Option<PathBuf>,
    /// The folder holding the images the CSV names.
    #[arg(long, value_name = "DIR", requires = "csv")]
    pub images: Option<PathBuf>,
    /// Appended to every image name of the CSV (e.g. `.jpg`).
    #[arg(long, default_value = "")]
    pub suffix: String,
    /// Validation fraction when the data has no train/valid split (CSV, or one folder per class).
    #[arg(long, default_value_t = TransferConfig::default().valid_pct, value_parser = super::flags::open_fraction)]
    pub valid_pct: f64,
    /// Seed for splits, shuffling and augmentation.
    #[arg(long, default_value_t = TransferConfig::default().seed)]
    pub seed: u64,
}

impl DataArgs {
    /// The data set of photos these options name.
    pub fn photos(&self) -> Result<Dataset> {
        match (&self.csv, &self.images, &self.dataset) {
            (Some(labels), Some(images), _) => Ok(Dataset::Csv {
                labels: labels.clone(),
                images: images.clone(),
                suffix: self.suffix.clone(),
            }),
            (None, _, Some(dir)) if Path::new(dir).is_dir() => Ok(Dataset::Folder(dir.into())),
            (None, _, Some(other)) => bail!(
                "'{other}' is not a folder of photos (expected train/<class>/… or <class>/…, or give --csv LABELS.csv --images DIR)"
            ),
            _ => bail!("give a dataset (a folder of photos) or --csv LABELS.csv --images DIR"),
        }
    }

    /// The training and held-out images of a network trained from scratch: `mnist` (its IDX files
    /// in `mnist_dir`, by default `$CONVLEARN_DATA/data/mnist`), `shapes` (generated), or a folder
    /// of photos or a CSV, squashed to `size` (default 28) pixels a side.
    pub fn scratch_images(
        &self,
        mnist_dir: Option<&Path>,
        size: Option<usize>,
    ) -> Result<(ImageSet, ImageSet)> {
        let builtin = matches!(self.name(), "mnist" | "shapes") && self.csv.is_none();
        if let (true, Some(size)) = (builtin, size) {
            bail!(
                "--size {size}: {} images are 28×28; --size is for photos",
                self.name()
            );
        }
        match self.name() {
            "mnist" => {
                let dir = mnist_dir
                    .map_or_else(|| shared_data_dir().join("data/mnist"), Path::to_path_buf);
                let m = Mnist::load(&dir)?;
                Ok((m.train, m.test))
            }
            "shapes" if self.csv.is_none() => Ok(shapes_split()),
            other if Path::new(other).is_dir() || self.csv.is_some() => Ok(scratch_photos(
                &self.photos()?,
                size.unwrap_or(28),
                None,
                self.valid_pct,
                self.seed,
            )?),
            other => {
                bail!("unknown dataset '{other}': expected mnist, shapes or a folder of photos")
            }
        }
    }

    /// The dataset argument for built-in data sets (`mnist`, `shapes`).
    pub fn name(&self) -> &str {
        self.dataset.as_deref().unwrap_or("")
    }

    /// A short name for output files.
    pub fn stem(&self) -> String {
        match self.photos() {
            Ok(d) => d.name(),
            Err(_) => self.name().to_string(),
        }
    }
}
