//! The pictures the page can use: built-in generated ones, the files of the sample folder (read once
//! at start-up, looked up by id — a request never names a path), and uploads kept in memory.

use std::collections::VecDeque;
use std::io::Cursor;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use convlearn::data::{generate_shapes, load_image};
use convlearn::plot::picture;
use image::DynamicImage;
use serde::Serialize;

use crate::ApiError;

/// The largest upload accepted, in bytes (5 MiB).
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;
/// Pictures are shrunk to fit this many pixels a side in the playground, so edits answer at once.
pub const MAX_SIDE: u32 = 128;
/// Decoded uploads may not exceed this many pixels a side.
const MAX_DIMENSION: u32 = 8192;
/// Uploads kept; older ones are forgotten.
const MAX_UPLOADS: usize = 32;
/// Uploads are kept shrunk to fit this many pixels a side, as 8-bit RGB: 32 of them take at most
/// 24 MiB, whatever was uploaded (a 16-bit 8192² PNG decodes to 512 MiB).
pub const STORED_SIDE: u32 = 512;

/// A picture the page can pick.
#[derive(Clone, Debug, Serialize)]
pub struct ImageInfo {
    /// Its id in API requests.
    pub id: String,
    /// What the page shows.
    pub name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Samples and uploads.
pub struct ImageStore {
    samples: Vec<(ImageInfo, DynamicImage)>,
    uploads: Mutex<VecDeque<(ImageInfo, DynamicImage)>>,
    next_upload: AtomicUsize,
}

fn info(id: String, name: String, image: &DynamicImage) -> ImageInfo {
    ImageInfo {
        id,
        name,
        width: image.width(),
        height: image.height(),
    }
}

impl ImageStore {
    /// The built-in pictures (generated shapes) and the pictures directly inside `dir`; files that
    /// cannot be decoded are skipped with a warning.
    pub fn with_samples(dir: Option<&Path>) -> convlearn::Result<Self> {
        let mut samples = Vec::new();
        let shapes = generate_shapes(4, 96, 7);
        for k in 0..shapes.len() {
            let name = format!(
                "generated {}",
                shapes.targets.view().describe(k, &shapes.classes)
            );
            let image = DynamicImage::ImageRgb8(picture(&shapes.image(k)));
            samples.push((info(format!("sample-{k}"), name, &image), image));
        }
        if let Some(dir) = dir {
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .map_err(|e| convlearn::Error::io(dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for path in files {
                match load_image(&path) {
                    Ok(image) => {
                        let id = format!("sample-{}", samples.len());
                        let name = path
                            .file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default();
                        samples.push((info(id, name, &image), image));
                    }
                    Err(e) => eprintln!("warning: sample skipped: {e}"),
                }
            }
        }
        Ok(Self {
            samples,
            uploads: Mutex::new(VecDeque::new()),
            next_upload: AtomicUsize::new(1),
        })
    }

    /// Every picture, samples first.
    pub fn list(&self) -> Vec<ImageInfo> {
        let uploads = self.uploads.lock().expect("not poisoned");
        self.samples
            .iter()
            .map(|s| s.0.clone())
            .chain(uploads.iter().map(|u| u.0.clone()))
            .collect()
    }

    /// The picture with this id.
    pub fn get(&self, id: &str) -> Result<DynamicImage, ApiError> {
        if let Some((_, image)) = self.samples.iter().find(|s| s.0.id == id) {
            return Ok(image.clone());
        }
        let uploads = self.uploads.lock().expect("not poisoned");
        uploads
            .iter()
            .find(|u| u.0.id == id)
            .map(|u| u.1.clone())
            .ok_or_else(|| ApiError::not_found(format!("no picture '{id}' (upload it again?)")))
    }

    /// Decodes and keeps an uploaded file; a file that is not a picture is refused with 415.
    pub fn add_upload(&self, name: &str, bytes: &[u8]) -> Result<ImageInfo, ApiError> {
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(too_large());
        }
        let unsupported = |msg: String| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, msg);
        let mut reader = image::ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| ApiError::bad_request(format!("cannot read the upload: {e}")))?;
        if reader.format().is_none() {
            return Err(unsupported(format!(
                "'{name}' is not an image: PNG, JPEG, BMP or GIF expected"
            )));
        }
        let mut limits = convlearn::data::image_limits();
        limits.max_image_width = Some(MAX_DIMENSION);
        limits.max_image_height = Some(MAX_DIMENSION);
        reader.limits(limits);
        let image = reader
            .decode()
            .map_err(|e| unsupported(format!("'{name}' could not be decoded as an image: {e}")))?;
        let image = if image.width().max(image.height()) > STORED_SIDE {
            image.resize(
                STORED_SIDE,
                STORED_SIDE,
                image::imageops::FilterType::Triangle,
            )
        } else {
            image
        };
        let image = DynamicImage::ImageRgb8(image.to_rgb8());
        let n = self.next_upload.fetch_add(1, Ordering::Relaxed);
        let shown = if name.is_empty() { "upload" } else { name };
        let info = info(format!("upload-{n}"), format!("uploaded: {shown}"), &image);
        let mut uploads = self.uploads.lock().expect("not poisoned");
        if uploads.len() == MAX_UPLOADS {
            uploads.pop_front();
        }
        uploads.push_back((info.clone(), image));
        Ok(info)
    }
}

/// 413 with the limit stated.
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the upload is larger than the limit of {} MiB: choose a smaller picture",
            MAX_UPLOAD_BYTES / (1024 * 1024)
        ),
    )
}
