//! Looking inside a trained model: predictions, every layer's activations, the arithmetic of one
//! activation, where it looked (Grad-CAM), what its first kernels learned and which pictures excite
//! a deeper channel most, and what it gets wrong (confusion matrix, top losses, uncertain
//! predictions, per-tag scores).

mod activations;
pub mod explain;
mod gradcam;
mod interpretation;
mod learned_kernels;
mod lesson_workbook;
mod predict;
mod report;
mod top_patches;
mod workbook;

pub use activations::render_activations;
pub use explain::{Explanation, Normalized, explain};
pub use gradcam::{Heatmap, grad_cam, heatmap_overlay, render_heatmap};
pub use interpretation::{Confusion, Interpretation};
pub use learned_kernels::{FirstKernels, render_first_kernels};
pub use lesson_workbook::{LessonWorkbook, import_lesson_workbook};
pub use predict::{
    ImageOutputs, PredictOptions, Prediction, Scores, image_outputs, model_input, outputs_of_image,
    predict_image, read_model_image,
};
pub use report::{InterpretReport, interpret, matrix_table, tag_table};
pub use top_patches::{Patch, TopPatches, image_files, render_top_patches, top_patches};
pub use workbook::{
    MAX_FORMULA_CELLS, WorkbookReport, workbook_bytes, workbook_fits, write_workbook,
};
