//! One PNG of everything the network computes for an image: the input, every conv layer's feature
//! maps (one labelled tile per channel), every pooled map, and the final probabilities.

use std::path::Path;

use burn::tensor::Device;

use super::{ImageOutputs, model_input};
use crate::error::Result;
use crate::host::{first_maps, values};
use crate::kernels::FeatureMaps;
use crate::learner::probabilities;
use crate::model_file::SavedModel;
use crate::plot::{Canvas, ColorMode, map_to_image, picture};

const TILES_PER_ROW: usize = 16;
const MAX_CHANNELS: usize = 64;
const TILE: u32 = 64;
const GAP: u32 = 6;
const MARGIN: u32 = 16;
const LABEL: u32 = 24;

/// Draws `image` (0..1 values at the model's input size) through `model` to `path`; returns the
/// outputs in class order (softmax probabilities, or a sigmoid per tag for a multi-label model).
pub fn render_activations(
    model: &SavedModel,
    image: &FeatureMaps,
    path: &Path,
    device: &Device,
) -> Result<ImageOutputs> {
    let (logits, stages) = model
        .network
        .forward_with_stages(model_input(model, image, device));
    let multi_label = model.meta.multi_label;
    let probs = values(probabilities(logits.clone(), multi_label));
    let logits = values(logits);
    let mut rows: Vec<(String, FeatureMaps)> = vec![(
        format!("input {}×{}", image.width, image.height),
        image.clone(),
    )];
    for (name, tensor) in stages {
        let mut maps = first_maps(tensor);
        let mut label = format!(
            "{name}: {} channels, {}×{}",
            maps.channels, maps.width, maps.height
        );
        if maps.channels > MAX_CHANNELS {
            label = format!("{label}, first {MAX_CHANNELS} shown");
            maps.data.truncate(MAX_CHANNELS * maps.height * maps.width);
            maps.channels = MAX_CHANNELS;
        }
        rows.push((label, maps));
    }
    let classes = &model.meta.classes;
    let width = 2 * MARGIN + TILES_PER_ROW as u32 * (TILE + GAP);
    let mut height = MARGIN;
    // The input is one picture; every other stage one tile per channel.
    for (i, (_, m)) in rows.iter().enumerate() {
        let tiles = if i == 0 { 1 } else { m.channels };
        height += LABEL + tiles.div_ceil(TILES_PER_ROW) as u32 * (TILE + GAP + 14) + GAP;
    }
    height += LABEL + classes.len() as u32 * 20 + MARGIN;
    let mut canvas = Canvas::new(width.max(560), height);
    let mut y = MARGIN;
    for (i, (label, maps)) in rows.iter().enumerate() {
        let maps = maps.fit_within(TILE as usize);
        let scale = (TILE / maps.width.max(maps.height).max(1) as u32).max(1);
        if i == 0 {
            canvas.text(MARGIN as i32, y as i32 + 2, 16.0, label, [0, 0, 0]);
            canvas.blit(&picture(&maps), MARGIN, y + LABEL, scale);
            y += LABEL + TILE + GAP + 14 + GAP;
            continue;
        }
        let (lo, hi) = maps.range();
        let brightest = lo.abs().max(hi.abs());
        let mode = ColorMode::Signed {
            scale: brightest.max(1e-6),
        };
        canvas.text(
            MARGIN as i32,
            y as i32 + 2,
            16.0,
            &format!("{label} (brightest = {brightest:.3})"),
            [0, 0, 0],
        );
        y += LABEL;
        for c in 0..maps.channels {
            let (col, row) = ((c % TILES_PER_ROW) as u32, (c / TILES_PER_ROW) as u32);
            let x = MARGIN + col * (TILE + GAP);
            let ty = y + row * (TILE + GAP + 14);
            canvas.blit(&map_to_image(&maps, c, mode), x, ty, scale);
            canvas.text(
                x as i32,
                (ty + TILE + 1) as i32,
                11.0,
                &format!("ch {c}"),
                [90, 90, 90],
            );
        }
        y += maps.channels.div_ceil(TILES_PER_ROW) as u32 * (TILE + GAP + 14) + GAP;
    }
    canvas.text(
        MARGIN as i32,
        y as i32 + 2,
        16.0,
        if multi_label {
            "sigmoid probabilities (one per tag)"
        } else {
            "softmax probabilities"
        },
        [0, 0, 0],
    );
    y += LABEL;
    let best = probs.iter().copied().fold(0.0f32, f32::max);
    for (class, p) in classes.iter().zip(&probs) {
        canvas.text(MARGIN as i32, y as i32, 14.0, class, [0, 0, 0]);
        let bar = (p * 300.0).round() as u32;
        let color = if *p == best {
            [0, 150, 0]
        } else {
            [120, 120, 200]
        };
        canvas.fill(MARGIN + 130, y + 2, bar.max(1), 14, color);
        canvas.text(
            (MARGIN + 140 + bar) as i32,
            y as i32,
            14.0,
            &format!("{:.1}%", 100.0 * p),
            [0, 0, 0],
        );
        y += 20;
    }
    canvas.save(path)?;
    Ok(ImageOutputs {
        probabilities: probs,
        logits,
    })
}
