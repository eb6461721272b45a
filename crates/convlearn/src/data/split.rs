//! Labelled image files split into training and validation: from folders (`train/<class>/…` with
//! `valid/<class>/…` or `val/`, or one `<class>/…` tree split at random by a seeded fraction), or
//! from a labels CSV (see [`DataSplit::from_csv`](super::csv_labels)).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::Targets;
use crate::error::{Error, Result};

/// Image files with their labels.
#[derive(Clone, Debug)]
pub struct ItemList {
    /// The files.
    pub paths: Vec<PathBuf>,
    /// Their classes (or tags), in the same order.
    pub targets: Targets,
}

impl ItemList {
    /// Number of files.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Shuffles by `seed` and moves the first `valid_pct` of the items to a second list.
    pub fn split_at_random(self, valid_pct: f64, seed: u64) -> (ItemList, ItemList) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let n_valid = ((self.len() as f64) * valid_pct).round() as usize;
        let (valid, train) = order.split_at(n_valid.min(self.len()));
        let pick = |idx: &[usize]| ItemList {
            paths: idx.iter().map(|&i| self.paths[i].clone()).collect(),
            targets: self.targets.view().select(idx),
        };
        (pick(train), pick(valid))
    }
}

/// A training and a validation list over the same classes.
#[derive(Clone, Debug)]
pub struct DataSplit {
    /// Class (or tag) names, sorted.
    pub classes: Vec<String>,
    /// Training items.
    pub train: ItemList,
    /// Validation items.
    pub valid: ItemList,
}

/// The class folders directly inside `dir` (not hidden), sorted: each one's name as shown (lossy
/// for a name that is not UTF-8) and as it is on disk. A folder without files is no class: it is
/// skipped with a warning.
fn class_folders(dir: &Path) -> Result<Vec<(String, OsString)>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let raw = entry.file_name();
        let name = raw.to_string_lossy().to_string();
        if entry.path().is_dir() && !name.starts_with('.') {
            if files(&entry.path())?.is_empty() {
                eprintln!(
                    "warning: {} holds no files; it is not made a class",
                    entry.path().display()
                );
                continue;
            }
            names.push((name, raw));
        }
    }
    names.sort();
    Ok(names)
}

/// The names of `dir`'s folders (empty or not), for the valid/ check.
fn folder_names(dir: &Path) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.path().is_dir() {
            names.push(entry.file_name());
        }
    }
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

fn list(dir: &Path, classes: &[(String, OsString)]) -> Result<ItemList> {
    let (mut paths, mut labels) = (Vec::new(), Vec::new());
    for (label, (_, class)) in classes.iter().enumerate() {
        let d = dir.join(class);
        if d.is_dir() {
            for p in files(&d)? {
                paths.push(p);
                labels.push(label);
            }
        }
    }
    Ok(ItemList {
        paths,
        targets: Targets::Classes(labels),
    })
}

impl DataSplit {
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
            let classes = class_folders(&dir.join("train"))?;
            let train = list(&dir.join("train"), &classes)?;
            let valid = list(&valid_dir, &classes)?;
            for extra in folder_names(&valid_dir)?
                .iter()
                .filter(|c| !classes.iter().any(|(_, raw)| raw == *c))
            {
                eprintln!(
                    "warning: {} has no training images; its images are ignored",
                    valid_dir.join(extra).display()
                );
            }
            DataSplit {
                classes: classes.into_iter().map(|(name, _)| name).collect(),
                train,
                valid,
            }
        } else {
            let classes = class_folders(dir)?;
            let (train, valid) = list(dir, &classes)?.split_at_random(valid_pct, seed);
            DataSplit {
                classes: classes.into_iter().map(|(name, _)| name).collect(),
                train,
                valid,
            }
        };
        split.check(dir, "class folders")?;
        Ok(split)
    }

    /// True when items carry several tags each.
    pub fn is_multi_label(&self) -> bool {
        self.train.targets.view().is_multi_label()
    }

    /// There must be two classes (`what` names them in the error) and files in both parts.
    pub(crate) fn check(&self, source: &Path, what: &str) -> Result<()> {
        if self.classes.len() < 2 {
            return Err(Error::format(
                source,
                format!("needs at least two {what}, found {:?}", self.classes),
            ));
        }
        if self.train.is_empty() || self.valid.is_empty() {
            return Err(Error::format(
                source,
                format!(
                    "has {} training and {} validation files: both must be non-empty",
                    self.train.len(),
                    self.valid.len()
                ),
            ));
        }
        Ok(())
    }
}
