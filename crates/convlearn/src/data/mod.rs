//! Data: image files and folders, MNIST's IDX format, generated shapes, augmentation, and batching
//! into tensors ahead of the model.

mod augment;
mod batch;
mod csv_labels;
mod dataset;
mod idx;
mod image_file;
mod image_set;
mod input_size;
mod mnist;
mod photo_set;
mod preprocess;
mod small_photos;
mod source;
mod split;
mod synthetic;
mod targets;

pub use augment::{Augment, dihedral, lighting, random_crop, rotate};
pub use batch::{Batch, BatchTargets, Batcher, HostBatch};
pub use dataset::Dataset;
pub use idx::{read_idx_images, read_idx_labels};
pub use image_file::{
    IMAGE_BYTES_MAX, IMAGE_SIDE_MAX, Normalization, image_limits, image_to_maps, load_image,
};
pub use image_set::ImageSet;
pub use input_size::{input_size, typical_crop_side};
pub use mnist::{MNIST_CLASSES, Mnist};
pub use photo_set::{PhotoSet, memory_budget};
pub use preprocess::{Crop, Preprocess};
pub use small_photos::{SmallPhotos, decode_small_photos};
pub use source::ImageSource;
pub use split::{DataSplit, ItemList};
pub use synthetic::{SHAPE_CLASSES, generate_shapes, shapes_split};
pub use targets::{Labels, Targets};

/// The directory holding the project's shared data: `$CONVLEARN_DATA`, else `../shared`.
pub fn shared_data_dir() -> std::path::PathBuf {
    std::env::var_os("CONVLEARN_DATA")
        .map(Into::into)
        .unwrap_or_else(|| "../shared".into())
}
