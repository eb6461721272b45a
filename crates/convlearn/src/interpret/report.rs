//! `interpret`'s output: the figures and tables that say what a model got wrong, written to a folder,
//! and a summary of them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use image::imageops::FilterType;
use serde::Serialize;

use super::{Confusion, Interpretation, grad_cam};
use crate::data::{ImageSource, PhotoSet};
use crate::error::{Error, Result};
use crate::learner::{Scores, TagReport, best_threshold};
use crate::model_file::SavedModel;
use crate::plot::{
    BarRow, GalleryItem, Series, overlay, plot_curves, render_bar_table, render_count_matrix,
    render_gallery,
};

/// Pictures in the top-losses and most-uncertain grids.
const GALLERY: usize = 16;
/// Side of a picture in those grids.
const TILE: u32 = 180;

/// What `interpret` found, and where it wrote the figures.
#[derive(Clone, Debug, Serialize)]
pub struct InterpretReport {
    /// Images evaluated.
    pub images: usize,
    /// Multi-label model.
    pub multi_label: bool,
    /// The model's tag threshold (multi-label).
    pub threshold: Option<f32>,
    /// Scores at the model's threshold.
    pub scores: Scores,
    /// Scores with test-time augmentation, when asked for.
    pub scores_tta: Option<Scores>,
    /// Single-label: counts `[actual][predicted]`.
    pub confusion_matrix: Option<Vec<Vec<usize>>>,
    /// The most frequent (actual, predicted) mistakes.
    pub most_confused: Vec<Confusion>,
    /// The items with the highest loss: (file, actual, predicted, loss).
    pub top_losses: Vec<(PathBuf, String, String, f64)>,
    /// The most uncertain items: (file, actual, predicted, uncertainty 0..1).
    pub most_uncertain: Vec<(PathBuf, String, String, f64)>,
    /// Multi-label: per tag at the threshold.
    pub tags: Vec<TagReport>,
    /// Multi-label: the best threshold on this set and its F2.
    pub best_threshold: Option<(f32, f64)>,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Interprets `model` on `set` (prepared at the model's input size), writing the figures to `dir`.
pub fn interpret(
    model: &SavedModel,
    set: &PhotoSet,
    tta: usize,
    dir: &Path,
    device: &Device,
) -> Result<InterpretReport> {
    if set.classes() != model.meta.classes.as_slice() {
        return Err(Error::Invalid(format!(
            "the data's classes {:?} differ from the model's {:?}",
            set.classes(),
            model.meta.classes
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let it = Interpretation::compute(model, set, tta, device);
    let labels = set.labels();
    let mut files = Vec::new();
    let row = |i: usize, v: f64| {
        (
            set.paths[i].clone(),
            it.actual[i].clone(),
            it.predicted[i].clone(),
            v,
        )
    };

    let confusion_matrix = it.confusion_matrix(labels);
    if let Some(m) = &confusion_matrix {
        let png = dir.join("confusion_matrix.png");
        render_count_matrix(
            &png,
            &format!("Confusion matrix ({} images)", it.len()),
            "actual",
            "predicted",
            &it.classes,
            m,
        )?;
        let txt = dir.join("confusion_matrix.txt");
        write_text(&txt, &matrix_table(&it.classes, m))?;
        files.extend([png, txt]);
    }

    let top = it.top_losses(GALLERY);
    let png = dir.join("top_losses.png");
    let items = top
        .iter()
        .map(|&i| {
            let score = match it.probability_of_truth(i, labels) {
                Some(p) => format!("loss {:.2}, p(actual) {p:.2}", it.losses[i]),
                None => format!("loss {:.3}", it.losses[i]),
            };
            let lines = vec![
                format!("predicted: {}", or_none(&it.predicted[i])),
                format!("actual: {}", or_none(&it.actual[i])),
                score,
                file_name(&set.paths[i]),
            ];
            heatmap_item(model, set, i, lines, device)
        })
        .collect::<Result<Vec<_>>>()?;
    render_gallery(
        &png,
        "Top losses, highest first (heat: where the model looked for its top class)",
        &items,
        4,
        TILE,
    )?;
    files.push(png);

    let uncertain = it.most_uncertain(GALLERY);
    let png = dir.join("most_uncertain.png");
    let n = it.classes.len();
    let items = uncertain
        .iter()
        .map(|&i| {
            let probs = &it.probabilities[i * n..(i + 1) * n];
            let mut ranked: Vec<usize> = (0..n).collect();
            ranked.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            let best: Vec<String> = ranked
                .iter()
                .take(3)
                .map(|&k| format!("{} {:.2}", it.classes[k], probs[k]))
                .collect();
            let lines = vec![
                format!("uncertainty {:.2}", it.uncertainty(i)),
                best.join(", "),
                format!("actual: {}", or_none(&it.actual[i])),
                file_name(&set.paths[i]),
            ];
            gallery_item(set, i, lines)
        })
        .collect::<Vec<_>>();
    let how = if it.multi_label {
        format!("tags nearest the threshold {:.2}", it.threshold)
    } else {
        "the two likeliest classes closest".to_string()
    };
    render_gallery(
        &png,
        &format!("Most uncertain predictions ({how})"),
        &items,
        4,
        TILE,
    )?;
    files.push(png);

    let (mut tags, mut best) = (Vec::new(), None);
    if it.multi_label {
        tags = it.tag_reports(labels);
        let png = dir.join("tags.png");
        let rows: Vec<BarRow> = tags
            .iter()
            .map(|t| BarRow {
                name: t.tag.clone(),
                note: format!("({} images)", t.support),
                values: vec![t.precision, t.recall, t.f2],
            })
            .collect();
        render_bar_table(
            &png,
            &format!("Per tag at threshold {:.2}", it.threshold),
            &["precision", "recall", "F2"],
            &rows,
        )?;
        let txt = dir.join("tags.txt");
        write_text(&txt, &tag_table(&tags))?;
        let curve = it.f2_curve(labels);
        best = Some(best_threshold(&curve));
        let png_curve = dir.join("f2_vs_threshold.png");
        plot_curves(
            &png_curve,
            &format!(
                "F2 against the threshold (model's threshold {:.2})",
                it.threshold
            ),
            "threshold",
            "F2 (averaged over images)",
            &[Series {
                name: "F2".into(),
                points: curve.iter().map(|&(t, f)| (t as f64, f)).collect(),
            }],
        )?;
        files.extend([png, txt, png_curve]);
    }

    Ok(InterpretReport {
        images: it.len(),
        multi_label: it.multi_label,
        threshold: it.multi_label.then_some(it.threshold),
        scores: it.scores,
        scores_tta: it.scores_tta,
        confusion_matrix,
        most_confused: it.most_confused(1).into_iter().take(10).collect(),
        top_losses: top.iter().map(|&i| row(i, it.losses[i])).collect(),
        most_uncertain: uncertain
            .iter()
            .map(|&i| row(i, it.uncertainty(i)))
            .collect(),
        tags,
        best_threshold: best,
        files,
    })
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "(none)" } else { s }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Item `i` as the model sees it (the evaluation crop), fitted into the tile.
fn gallery_item(set: &PhotoSet, i: usize, lines: Vec<String>) -> GalleryItem {
    let cropped = set.crop.apply(&set.image(i));
    let image = cropped.resize(TILE, TILE, FilterType::Triangle).to_rgb8();
    GalleryItem { image, lines }
}

/// [`gallery_item`] with the Grad-CAM map of the model's most probable class laid over it: what
/// the network looked at when it was wrong.
fn heatmap_item(
    model: &SavedModel,
    set: &PhotoSet,
    i: usize,
    mut lines: Vec<String>,
    device: &Device,
) -> Result<GalleryItem> {
    let mut item = gallery_item(set, i, Vec::new());
    let input = model.meta.preprocess.prepare(&set.image(i))?;
    let heat = grad_cam(model, &input, None, None, device)?;
    item.image = overlay(&item.image, &heat.heatmap, 0.5);
    lines.push(format!("heat: {}", heat.class));
    item.lines = lines;
    Ok(item)
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    crate::output_file::write_bytes(path, text.as_bytes())
}

/// The confusion matrix as aligned text: rows actual, columns predicted.
pub fn matrix_table(names: &[String], m: &[Vec<usize>]) -> String {
    let w = names.iter().map(|s| s.len()).max().unwrap_or(1).max(6);
    let mut out = format!("{:>w$}  predicted →\n{:>w$}", "", "actual ↓");
    for n in names {
        let _ = write!(out, " {n:>w$}");
    }
    out.push('\n');
    for (name, row) in names.iter().zip(m) {
        let _ = write!(out, "{name:>w$}");
        for c in row {
            let _ = write!(out, " {c:>w$}");
        }
        out.push('\n');
    }
    out
}

/// Per-tag precision, recall and F2 as aligned text.
pub fn tag_table(tags: &[TagReport]) -> String {
    let w = tags.iter().map(|t| t.tag.len()).max().unwrap_or(3).max(3);
    let mut out = format!(
        "{:<w$} {:>7} {:>9} {:>9} {:>6} {:>6}\n",
        "tag", "images", "predicted", "precision", "recall", "F2"
    );
    for t in tags {
        let _ = writeln!(
            out,
            "{:<w$} {:>7} {:>9} {:>9.3} {:>6.3} {:>6.3}",
            t.tag, t.support, t.predicted, t.precision, t.recall, t.f2
        );
    }
    out
}
