//! Labels from a CSV in fastai's format: a header, then `image_name,tags` rows whose tags are
//! space-separated (an image may have several: multi-label). Images live in one folder, named by the
//! first column plus an optional suffix. A CSV with one tag per row is ordinary single-label data.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use super::{DataSplit, ItemList, Targets};
use crate::error::{Error, Result};

/// Column names accepted for the image and the tags (others are reported and ignored).
const NAME_COLUMNS: [&str; 6] = ["image_name", "image", "name", "fname", "file", "filename"];
const TAG_COLUMNS: [&str; 5] = ["tags", "tag", "labels", "label", "class"];

/// How many bad rows one error lists before summarising.
const MAX_LISTED: usize = 10;

/// One row of the CSV: its line, the image file and its tags.
struct Row {
    path: PathBuf,
    tags: Vec<String>,
}

fn read_rows(csv_path: &Path, images: &Path, suffix: &str) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(csv_path)
        .map_err(|e| Error::format(csv_path, format!("cannot read the labels CSV: {e}")))?;
    let header = reader
        .headers()
        .map_err(|e| Error::format(csv_path, format!("line 1 (header): {e}")))?
        .clone();
    if header.len() < 2 {
        return Err(Error::format(
            csv_path,
            format!(
                "line 1: the header must name two columns, the image and its space-separated tags \
                 (like `image_name,tags`), found {:?}",
                header.iter().collect::<Vec<_>>()
            ),
        ));
    }
    let known = |name: &str, list: &[&str]| list.contains(&name.to_lowercase().as_str());
    if !known(&header[0], &NAME_COLUMNS) || !known(&header[1], &TAG_COLUMNS) {
        eprintln!(
            "warning: {}: reading column '{}' as the image name and '{}' as the tags",
            csv_path.display(),
            &header[0],
            &header[1]
        );
    }
    for extra in header.iter().skip(2) {
        eprintln!(
            "warning: {}: unknown column '{extra}' is ignored (expected only image name and tags)",
            csv_path.display()
        );
    }
    let (mut rows, mut problems, mut seen) = (Vec::new(), Vec::new(), HashSet::new());
    // Missing images, and the suffix that would have found each (fastai's Planet CSV has none).
    let (mut missing, mut found_with) = (Vec::new(), Vec::new());
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(format!("line {line}: malformed row: {e}"));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.len() < 2 {
            problems.push(format!(
                "line {line}: expected an image name and tags, found {} field(s)",
                record.len()
            ));
            continue;
        }
        let name = &record[0];
        if name.is_empty() {
            problems.push(format!("line {line}: the image name is empty"));
            continue;
        }
        if !seen.insert(name.to_string()) {
            problems.push(format!("line {line}: image '{name}' is listed twice"));
            continue;
        }
        let path = images.join(format!("{name}{suffix}"));
        if !path.is_file() {
            missing.push(format!("{name}{suffix}"));
            if let Some(ext) = SUFFIXES
                .iter()
                .find(|ext| images.join(format!("{name}{suffix}{ext}")).is_file())
            {
                found_with.push(*ext);
            }
            problems.push(format!(
                "line {line}: image file {} does not exist",
                path.display()
            ));
            continue;
        }
        let tags = record[1].split_whitespace().map(str::to_string).collect();
        rows.push(Row { path, tags });
    }
    if !missing.is_empty() && rows.is_empty() && found_with.len() == missing.len() {
        let ext = found_with[0];
        return Err(Error::format(
            csv_path,
            format!(
                "none of its {} images exists as named (e.g. {}), but each exists with '{ext}' \
                 added: give --suffix {suffix}{ext}",
                missing.len(),
                images.join(&missing[0]).display()
            ),
        ));
    }
    if !problems.is_empty() {
        let more = problems.len().saturating_sub(MAX_LISTED);
        problems.truncate(MAX_LISTED);
        if more > 0 {
            problems.push(format!("… and {more} more"));
        }
        return Err(Error::format(csv_path, problems.join("\n  ")));
    }
    Ok(rows)
}

/// The extensions tried when a CSV's image names match no file as they are.
const SUFFIXES: [&str; 6] = [".jpg", ".jpeg", ".png", ".tif", ".bmp", ".gif"];

impl DataSplit {
    /// Reads a labels CSV (`image_name,tags`, tags space-separated) whose images are
    /// `images/<image_name><suffix>`, and splits it at random: `valid_pct` to validation, by `seed`.
    /// Rows with more than one tag make the data multi-label. Every bad row (malformed, empty name,
    /// missing file, listed twice, no label in single-label data) is reported with its line.
    pub fn from_csv(
        csv_path: &Path,
        images: &Path,
        suffix: &str,
        valid_pct: f64,
        seed: u64,
    ) -> Result<Self> {
        if !images.is_dir() {
            return Err(Error::format(images, "is not a folder of images"));
        }
        let rows = read_rows(csv_path, images, suffix)?;
        let multi_label = rows.iter().any(|r| r.tags.len() > 1);
        if let Some(i) = rows
            .iter()
            .position(|r| r.tags.is_empty())
            .filter(|_| !multi_label)
        {
            return Err(Error::format(
                csv_path,
                format!(
                    "image {} has no label (single-label data needs one per row)",
                    rows[i].path.display()
                ),
            ));
        }
        let classes: Vec<String> = rows
            .iter()
            .flat_map(|r| r.tags.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let index = |t: &String| classes.binary_search(t).expect("collected above");
        let targets = if multi_label {
            Targets::Tags(
                rows.iter()
                    .map(|r| r.tags.iter().map(index).collect())
                    .collect(),
            )
        } else {
            Targets::Classes(rows.iter().map(|r| index(&r.tags[0])).collect())
        };
        let all = ItemList {
            paths: rows.into_iter().map(|r| r.path).collect(),
            targets,
        };
        let (train, valid) = all.split_at_random(valid_pct, seed);
        let split = DataSplit {
            classes,
            train,
            valid,
        };
        split.check(csv_path, "labels")?;
        Ok(split)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(csv: &str, files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("img")).unwrap();
        for f in files {
            std::fs::write(dir.path().join("img").join(f), b"x").unwrap();
        }
        std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
        dir
    }

    #[test]
    fn multi_label_rows_become_tags() {
        let d = setup(
            "image_name,tags\na,clear road\nb,haze\nc,clear\nd,road water\ne,clear\n",
            &["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"],
        );
        let s = DataSplit::from_csv(
            &d.path().join("labels.csv"),
            &d.path().join("img"),
            ".jpg",
            0.4,
            1,
        )
        .unwrap();
        assert!(s.is_multi_label());
        assert_eq!(s.classes, ["clear", "haze", "road", "water"]);
        assert_eq!((s.train.len(), s.valid.len()), (3, 2));
        let mut all: Vec<_> = s.train.paths.iter().chain(&s.valid.paths).collect();
        all.sort();
        assert_eq!(all.len(), 5);
        // Tags follow their files through the shuffle.
        let Targets::Tags(tags) = &s.train.targets else {
            panic!()
        };
        for (p, t) in s.train.paths.iter().zip(tags) {
            if p.ends_with("a.jpg") {
                assert_eq!(t, &vec![0, 2]);
            }
        }
    }

    #[test]
    fn names_without_their_extension_suggest_the_suffix() {
        let d = setup(
            "image_name,tags
a,clear road
b,haze
",
            &["a.jpg", "b.jpg"],
        );
        let err = DataSplit::from_csv(
            &d.path().join("labels.csv"),
            &d.path().join("img"),
            "",
            0.5,
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("none of its 2 images") && err.contains("--suffix .jpg"),
            "{err}"
        );
    }

    #[test]
    fn single_label_csv_is_classes() {
        let d = setup("name,label\na,cat\nb,dog\nc,cat\n", &["a", "b", "c"]);
        let s = DataSplit::from_csv(
            &d.path().join("labels.csv"),
            &d.path().join("img"),
            "",
            0.34,
            1,
        )
        .unwrap();
        assert!(!s.is_multi_label());
        assert_eq!(s.classes, ["cat", "dog"]);
    }

    #[test]
    fn errors_name_the_line() {
        let d = setup("image_name,tags\na,x y\n,x\nmissing,y\na,x\n", &["a.jpg"]);
        let err = DataSplit::from_csv(
            &d.path().join("labels.csv"),
            &d.path().join("img"),
            ".jpg",
            0.2,
            1,
        )
        .expect_err("bad rows")
        .to_string();
        assert!(err.contains("line 3: the image name is empty"), "{err}");
        assert!(
            err.contains("line 4: image file") && err.contains("missing.jpg"),
            "{err}"
        );
        assert!(err.contains("line 5: image 'a' is listed twice"), "{err}");
    }
}
