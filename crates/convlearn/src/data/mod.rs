//! Data: image files, MNIST's IDX format, generated shapes, and batching into tensors.

mod batch;
mod idx;
mod image_file;
mod image_set;
mod mnist;
mod preprocess;
mod synthetic;

pub use batch::{Batch, Batcher};
pub use idx::{read_idx_images, read_idx_labels};
pub use image_file::{Normalization, image_to_maps, load_image};
pub use image_set::ImageSet;
pub use mnist::{MNIST_CLASSES, Mnist};
pub use preprocess::{Crop, Preprocess};
pub use synthetic::{SHAPE_CLASSES, generate_shapes};

/// The directory holding the project's shared data: `$CONVLEARN_DATA`, else `../shared`.
pub fn shared_data_dir() -> std::path::PathBuf {
    std::env::var_os("CONVLEARN_DATA")
        .map(Into::into)
        .unwrap_or_else(|| "../shared".into())
}
