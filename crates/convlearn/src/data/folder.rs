//! Labelled image files from folders: `train/<class>/…` with `valid/<class>/…` (or `val/`), or one
//! `<class>/…` tree split at random by a seeded fraction.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{Error, Result};

/// Image files with class indices.
#[derive(Clone, Debug, Default)]
pub struct ItemList {
    /// (file, class index).
    pub items: Vec<(PathBuf, usize)>,
}

/// A training and a validation list over the same classes.
#[derive(Clone, Debug)]
pub struct FolderSplit {
    /// Class names (sorted folder names).
    pub classes: Vec<String>,
    /// Training items.
    pub train: ItemList,
    /// Validation items.
    pub valid: ItemList,
}

fn subdirs(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if entry.path().is_dir() && !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if path.is_file() && !hidden {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn list(dir: &Path, classes: &[String]) -> Result<ItemList> {
    let mut items = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let d = dir.join(class);
        if d.is_dir() {
            items.extend(files(&d)?.into_iter().map(|p| (p, label)));
        }
    }
    Ok(ItemList { items })
}

impl FolderSplit {
    /// Reads `dir`: with `train/` and `valid/` (or `val/`) inside, those are the split; otherwise the
    /// class folders directly inside `dir` are split at random, `valid_pct` to validation, by `seed`.
    pub fn open(dir: &Path, valid_pct: f64, seed: u64) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::format(
                dir,
                "is not a folder of images (expected train/<class>/… or <class>/…)",
            ));
        }
        let valid_dir = ["valid", "val"]
            .iter()
            .map(|v| dir.join(v))
            .find(|p| p.is_dir());
        let split = if let (true, Some(valid_dir)) = (dir.join("train").is_dir(), valid_dir) {
            let classes = subdirs(&dir.join("train"))?;
            let train = list(&dir.join("train"), &classes)?;
            let valid = list(&valid_dir, &classes)?;
            for extra in subdirs(&valid_dir)?.iter().filter(|c| !classes.contains(c)) {
                eprintln!(
                    "warning: {} has no training folder; its images are ignored",
                    valid_dir.join(extra).display()
                );
            }
            FolderSplit {
                classes,
                train,
                valid,
            }
        } else {
            let classes = subdirs(dir)?;
            let mut all = list(dir, &classes)?.items;
            all.shuffle(&mut StdRng::seed_from_u64(seed));
            let n_valid = ((all.len() as f64) * valid_pct).round() as usize;
            let train = all.split_off(n_valid.min(all.len()));
            FolderSplit {
                classes,
                train: ItemList { items: train },
                valid: ItemList { items: all },
            }
        };
        if split.classes.len() < 2 {
            return Err(Error::format(
                dir,
                format!(
                    "needs at least two class folders, found {:?}",
                    split.classes
                ),
            ));
        }
        if split.train.items.is_empty() || split.valid.items.is_empty() {
            return Err(Error::format(
                dir,
                format!(
                    "has {} training and {} validation files: both must be non-empty",
                    split.train.items.len(),
                    split.valid.items.len()
                ),
            ));
        }
        Ok(split)
    }
}
