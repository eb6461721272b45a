//! What a deeper channel looks for: the pictures of a folder that excite one channel of one layer
//! most, each cut to the part of the picture its strongest activation depends on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use image::RgbImage;
use image::imageops::{FilterType, crop_imm, resize};
use serde::Serialize;

use super::gradcam::{Inference, stage_named};
use super::{model_input, read_model_image};
use crate::error::{Error, Result};
use crate::feature_maps::FeatureMaps;
use crate::host::values;
use crate::model_file::SavedModel;
use crate::models::Network;
use crate::plot::{Canvas, picture};

/// One picture's strongest activation of the channel, and where it comes from.
#[derive(Clone, Debug, Serialize)]
pub struct Patch {
    /// The picture (in JSON, bytes of its name that are not UTF-8 become U+FFFD).
    #[serde(serialize_with = "lossy_path")]
    pub image: PathBuf,
    /// The channel's largest value in this picture.
    pub activation: f32,
    /// Where in the layer's map it is: `[row, column]`.
    pub position: [usize; 2],
    /// The part of the picture (as the model saw it, after resizing and cropping) that this value
    /// depends on, `[top, left, height, width]` in pixels: where its gradient with respect to the
    /// input is not zero. For a valid 3×3 convolution at `(r, c)` it is `[r, c, 3, 3]`; deeper, it
    /// grows to the unit's receptive field (less where a ReLU or max-pool passes nothing).
    pub region: [usize; 4],
}

/// The top pictures of a folder for one channel, as [`top_patches`] found them.
#[derive(Clone, Debug, Serialize)]
pub struct TopPatches {
    /// The layer (a stage name of [`crate::models::Network::forward_with_stages`]).
    pub layer: String,
    /// The channel.
    pub channel: usize,
    /// The layer's channels.
    pub channels: usize,
    /// The layer's map size for the model's input, `[rows, columns]`.
    pub map_size: [usize; 2],
    /// Pictures read.
    pub images: usize,
    /// Files that could not be read as pictures, each with the reason (left out, not fatal).
    #[serde(serialize_with = "lossy_skipped")]
    pub skipped: Vec<(PathBuf, String)>,
    /// The strongest pictures, strongest first, one patch per picture.
    pub patches: Vec<Patch>,
}

/// A path as JSON text: JSON strings are Unicode, so bytes that are not UTF-8 become U+FFFD.
fn lossy_path<S: serde::Serializer>(path: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// The skipped files as `[path, reason]` pairs, paths as [`lossy_path`] writes them.
fn lossy_skipped<S: serde::Serializer>(
    skipped: &[(PathBuf, String)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(
        skipped
            .iter()
            .map(|(p, why)| [p.to_string_lossy().into_owned(), why.clone()]),
    )
}

/// Where a directory walk stops going deeper.
const MAX_DEPTH: usize = 8;

/// The picture files under `dir` (sub-folders included, hidden ones and symbolic links to folders
/// not), by a name the `image` crate recognises, sorted, at most `limit`.
pub fn image_files(dir: &Path, limit: usize) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(Error::format(dir, "is not a folder of pictures"));
    }
    let mut found = BTreeSet::new();
    let mut folders = vec![(dir.to_path_buf(), 0)];
    while let Some((folder, depth)) = folders.pop() {
        for entry in std::fs::read_dir(&folder).map_err(|e| Error::io(&folder, e))? {
            let entry = entry.map_err(|e| Error::io(&folder, e))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if kind.is_dir() {
                if depth < MAX_DEPTH {
                    folders.push((path, depth + 1));
                }
            } else if path.is_file() && image::ImageFormat::from_path(&path).is_ok() {
                found.insert(path);
            }
        }
    }
    if found.is_empty() {
        return Err(Error::format(
            dir,
            "holds no picture files (PNG, JPEG, BMP, …)",
        ));
    }
    Ok(found.into_iter().take(limit).collect())
}

/// The `k` pictures of `images` in which channel `channel` of layer `layer` (a name
/// `activations` shows) reaches its largest values, one patch per picture (its strongest
/// position), strongest first. Files that cannot be read are left out and listed; a layer or
/// channel the model does not have is an error naming what it has.
pub fn top_patches(
    model: &SavedModel,
    images: &[PathBuf],
    layer: &str,
    channel: usize,
    k: usize,
    device: &Device,
) -> Result<TopPatches> {
    let network = model.network.clone().map(&mut Inference);
    let shape = &model.meta.preprocess;
    let probe = FeatureMaps::zeros(shape.channels, shape.height, shape.width);
    let (_, stages) = network.forward_with_stages(model_input(model, &probe, device));
    let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
    let stage = stage_named(&names, layer)?;
    let [_, channels, rows, columns] = stages[stage].1.dims();
    if rows * columns == 0 {
        return Err(Error::Invalid(format!(
            "layer '{layer}' has an empty map ({rows}×{columns}) at this model's input size"
        )));
    }
    if channel >= channels {
        return Err(Error::Invalid(format!(
            "layer '{layer}' has {channels} channels (0 to {}); there is no channel {channel}",
            channels.saturating_sub(1)
        )));
    }
    let (mut best, mut skipped, mut read) = (Vec::<Patch>::new(), Vec::new(), 0);
    for path in images {
        let input = match read_model_image(model, path) {
            Ok(input) => input,
            Err(e) => {
                skipped.push((path.clone(), e.to_string()));
                continue;
            }
        };
        read += 1;
        let (_, stages) = network.forward_with_stages(model_input(model, &input, device));
        let plane = values(stages[stage].1.clone().narrow(1, channel, 1));
        // The first place the largest value is reached (a ReLU'd map is often tied at zero).
        let (at, activation) =
            plane
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                });
        best.push(Patch {
            image: path.clone(),
            activation,
            position: [at / columns, at % columns],
            region: [0, 0, 0, 0],
        });
        best.sort_by(|a, b| b.activation.total_cmp(&a.activation));
        best.truncate(k);
    }
    if read == 0 {
        return Err(Error::Invalid(format!(
            "none of the {} files could be read as a picture (first: {})",
            images.len(),
            skipped
                .first()
                .map_or(String::new(), |(p, e)| format!("{}: {e}", p.display()))
        )));
    }
    for patch in &mut best {
        let input = read_model_image(model, &patch.image)?;
        patch.region = region_of(
            model,
            &network,
            &input,
            [stage, channel],
            patch.position,
            device,
        );
    }
    Ok(TopPatches {
        layer: layer.to_string(),
        channel,
        channels,
        map_size: [rows, columns],
        images: read,
        skipped,
        patches: best,
    })
}

/// The bounding box of the input pixels whose gradient of the activation at `position` of
/// `channel` in stage `stage` is not zero; the whole picture when the gradient is zero everywhere
/// (an activation a ReLU holds at zero depends on nothing).
fn region_of(
    model: &SavedModel,
    network: &Network,
    input: &FeatureMaps,
    [stage, channel]: [usize; 2],
    [row, column]: [usize; 2],
    device: &Device,
) -> [usize; 4] {
    let leaf = model_input(model, input, device).autodiff().require_grad();
    let (_, stages) = network.forward_with_stages(leaf.clone());
    let unit = stages[stage]
        .1
        .clone()
        .slice([0..1, channel..channel + 1, row..row + 1, column..column + 1])
        .sum();
    let (h, w) = (input.height, input.width);
    let Some(gradient) = leaf.grad(&unit.backward()) else {
        return [0, 0, h, w];
    };
    let gradient = values(gradient);
    let (mut top, mut left, mut bottom, mut right) = (h, w, 0, 0);
    for (i, g) in gradient.iter().enumerate() {
        if *g != 0.0 {
            let (y, x) = ((i / w) % h, i % w);
            (top, left) = (top.min(y), left.min(x));
            (bottom, right) = (bottom.max(y + 1), right.max(x + 1));
        }
    }
    if bottom == 0 {
        return [0, 0, h, w];
    }
    [top, left, bottom - top, right - left]
}

/// A patch's side on the figure, in pixels.
const TILE: u32 = 112;
/// Patches per row.
const COLUMNS: usize = 6;

/// Draws `top` to `path` (PNG): each patch enlarged (or reduced) to about 112 pixels, with its
/// value and picture name, strongest first.
pub fn render_top_patches(model: &SavedModel, top: &TopPatches, path: &Path) -> Result<()> {
    let (margin, caption, title) = (12u32, 30u32, 44u32);
    let n = top.patches.len().max(1);
    let columns = n.min(COLUMNS) as u32;
    let rows = n.div_ceil(COLUMNS) as u32;
    let width = (margin + columns * (TILE + margin)).max(460);
    let mut canvas = Canvas::new(width, title + rows * (TILE + caption + margin));
    let heading = format!(
        "{}, channel {} of {}: the {} strongest of {} pictures",
        top.layer,
        top.channel,
        top.channels,
        top.patches.len(),
        top.images
    );
    canvas.text(margin as i32, 6, 16.0, &heading, [20, 20, 20]);
    let what = "each cut to the pixels its largest value depends on";
    canvas.text(margin as i32, 25, 12.0, what, [90, 90, 90]);
    for (slot, patch) in top.patches.iter().enumerate() {
        let whole = picture(&read_model_image(model, &patch.image)?);
        let [y, x, h, w] = patch.region.map(|v| v as u32);
        let cut = crop_imm(&whole, x, y, w, h).to_image();
        let tile = fit(&cut);
        let (r, c) = ((slot / COLUMNS) as u32, (slot % COLUMNS) as u32);
        let (px, py) = (
            margin + c * (TILE + margin),
            title + r * (TILE + caption + margin),
        );
        canvas.blit(&tile, px, py, 1);
        let name = patch
            .image
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let short: String = name.chars().take(18).collect();
        canvas.text(
            px as i32,
            (py + TILE + 2) as i32,
            11.0,
            &format!("{:.3}", patch.activation),
            [40, 40, 40],
        );
        canvas.text(
            px as i32,
            (py + TILE + 15) as i32,
            10.0,
            &short,
            [90, 90, 90],
        );
    }
    canvas.save(path)
}

/// `patch` scaled so that its longer side is about [`TILE`]: whole-pixel enlargement (crisp
/// squares) for patches of a few pixels, a smooth resize for photo-sized ones.
fn fit(patch: &RgbImage) -> RgbImage {
    let side = patch.width().max(patch.height()).max(1);
    if 2 * side <= TILE {
        let s = TILE / side;
        RgbImage::from_fn(patch.width() * s, patch.height() * s, |x, y| {
            *patch.get_pixel(x / s, y / s)
        })
    } else {
        let (w, h) = (
            (patch.width() * TILE / side).max(1),
            (patch.height() * TILE / side).max(1),
        );
        resize(patch, w, h, FilterType::Triangle)
    }
}
