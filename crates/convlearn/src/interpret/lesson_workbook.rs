//! fast.ai's own lesson workbook (`conv-example.xlsx`, 2018) read into a convlearn model of the
//! spreadsheet architecture, so `explain`, `activations` and the page show the lesson's numbers.
//!
//! Where the sheet keeps them: the input in A2:AB29 (a 28 × 28 digit, cells holding k/255); conv1's
//! two 3 × 3 kernels in AD11:AF13 and AD38:AF40; conv2's two 2 × 3 × 3 kernels in BI11:BK13 +
//! BI15:BK17 and BI38:BK40 + BI42:BK44 (the first block of each pair weighs conv1's first map); the
//! 2 × 2 max-pool written every other cell from CM4 and CM33; the dense weights laid out as the
//! pools, from DN4 and DN33; the one output, a SUMPRODUCT, in EN4. No biases, and the input is used
//! as it is (an identity normalisation).
//!
//! The sheet's conv2 blocks are 24 × 25, not 24 × 24: their last column reads a window half past
//! conv1's 26-wide edge (empty cells, so zeros), and the pool and dense weights have a 13th column
//! for it. convlearn's valid convolution has no such column; the import leaves it out and says so
//! when the sheet gives it anything but zero weight × zero activation (in the 2018 sheet its
//! activations are all 0, so EN4 is reproduced exactly).

use std::path::Path;

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use calamine::{Data, Range, Reader, Xlsx, open_workbook};
use image::GrayImage;

use crate::data::{Crop, Normalization, Preprocess};
use crate::device::inference_device;
use crate::error::{Error, Result};
use crate::model_file::{ModelMeta, SavedModel};
use crate::models::{ArchSpec, ModelPreset, Network};

/// The lesson workbook is 180 KB; anything far larger is not it.
const MAX_BYTES: u64 = 20 << 20;

/// The lesson's network and picture.
pub struct LessonWorkbook {
    /// The spreadsheet architecture with the sheet's kernels and dense weights (one output).
    pub model: SavedModel,
    /// The sheet's input grid as an 8-bit gray picture (pixel k where the cell holds k/255).
    pub input: GrayImage,
    /// The sheet's own output (EN4's cached value).
    pub output: f64,
}

impl LessonWorkbook {
    /// Writes the input picture to `path` as an 8-bit gray PNG (atomically).
    pub fn save_input(&self, path: &Path) -> Result<()> {
        crate::output_file::write_atomically(path, |tmp| {
            self.input
                .save_with_format(tmp, image::ImageFormat::Png)
                .map_err(|e| Error::format(path, format!("cannot write PNG: {e}")))
        })
    }
}

/// Row and column (0-based) of an A1-style reference.
fn at(reference: &str) -> (u32, u32) {
    let split = reference.find(|c: char| c.is_ascii_digit()).unwrap_or(0);
    let (letters, digits) = reference.split_at(split);
    let col = letters
        .bytes()
        .fold(0u32, |n, b| n * 26 + (b - b'A' + 1) as u32)
        - 1;
    (digits.parse::<u32>().unwrap_or(1) - 1, col)
}

/// The number in a cell: empty is 0, text or an error is refused with the cell named.
fn number(sheet: &Range<Data>, path: &Path, (row, col): (u32, u32)) -> Result<f64> {
    match sheet.get_value((row, col)) {
        None | Some(Data::Empty) => Ok(0.0),
        Some(Data::Float(v)) => Ok(*v),
        Some(Data::Int(v)) => Ok(*v as f64),
        Some(other) => Err(Error::format(
            path,
            format!(
                "cell {}{} holds {other:?}, not a number: is this fast.ai's conv-example.xlsx?",
                column_name(col),
                row + 1
            ),
        )),
    }
}

fn column_name(mut col: u32) -> String {
    let mut name = Vec::new();
    loop {
        name.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    name.reverse();
    String::from_utf8(name).unwrap_or_default()
}

/// `rows × cols` numbers from `top_left`, every `step` cells.
fn grid(
    sheet: &Range<Data>,
    path: &Path,
    top_left: &str,
    (rows, cols): (usize, usize),
    step: u32,
) -> Result<Vec<f64>> {
    let (r0, c0) = at(top_left);
    let mut out = Vec::with_capacity(rows * cols);
    for i in 0..rows as u32 {
        for j in 0..cols as u32 {
            out.push(number(sheet, path, (r0 + i * step, c0 + j * step))?);
        }
    }
    Ok(out)
}

fn tensor<const D: usize>(values: &[f64], shape: [usize; D]) -> Param<Tensor<D>> {
    let data: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Param::from_tensor(Tensor::from_data(
        TensorData::new(data, shape),
        &inference_device(),
    ))
}

/// Reads fast.ai's `conv-example.xlsx` at `path` (its first sheet).
pub fn import_lesson_workbook(path: &Path) -> Result<LessonWorkbook> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if size > MAX_BYTES {
        return Err(Error::format(
            path,
            format!(
                "{size} bytes: the lesson workbook is 180 KB; refusing to read a workbook over 20 MB"
            ),
        ));
    }
    let mut book: Xlsx<_> = open_workbook(path)
        .map_err(|e| Error::format(path, format!("cannot read the workbook: {e}")))?;
    let sheet = book
        .worksheet_range_at(0)
        .ok_or_else(|| Error::format(path, "the workbook has no sheet"))?
        .map_err(|e| Error::format(path, format!("cannot read its first sheet: {e}")))?;
    let input = grid(&sheet, path, "A2", (28, 28), 1)?;
    if let Some(bad) = input.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(Error::format(
            path,
            format!(
                "input cell {}{} is {}, not a pixel between 0 and 1",
                column_name(bad as u32 % 28),
                bad / 28 + 2,
                input[bad]
            ),
        ));
    }
    let conv1 = [
        grid(&sheet, path, "AD11", (3, 3), 1)?,
        grid(&sheet, path, "AD38", (3, 3), 1)?,
    ]
    .concat();
    let conv2 = [
        grid(&sheet, path, "BI11", (3, 3), 1)?,
        grid(&sheet, path, "BI15", (3, 3), 1)?,
        grid(&sheet, path, "BI38", (3, 3), 1)?,
        grid(&sheet, path, "BI42", (3, 3), 1)?,
    ]
    .concat();
    // The dense weights in convlearn's order (channel, row, column) of the 2 × 12 × 12 pool.
    let dense = [
        grid(&sheet, path, "DN4", (12, 12), 2)?,
        grid(&sheet, path, "DN33", (12, 12), 2)?,
    ]
    .concat();
    // The 13th pool column (the extra conv2 column's): what it adds to EN4 is left out.
    let mut extra = 0.0;
    for (pool, weights) in [("DK4", "EL4"), ("DK33", "EL33")] {
        let (p, w) = (at(pool), at(weights));
        for i in 0..12 {
            extra += number(&sheet, path, (p.0 + 2 * i, p.1))?
                * number(&sheet, path, (w.0 + 2 * i, w.1))?;
        }
    }
    if extra != 0.0 {
        eprintln!(
            "warning: the sheet's 13th pool column adds {extra} to EN4; convlearn's valid \
             convolution has no such column, so the imported output differs by that much"
        );
    }
    let output = number(&sheet, path, at("EN4"))?;

    let classes = vec!["output".to_string()];
    let spec = ModelPreset::Spreadsheet.spec(1, 28, 28, 1);
    let arch = ArchSpec::Plain {
        preset: ModelPreset::Spreadsheet.name().into(),
        spec,
    };
    let Network::Plain(mut cnn) = Network::new(&arch, &inference_device())? else {
        unreachable!("the spreadsheet preset is a plain CNN");
    };
    cnn.convs[0].conv.weight = tensor(&conv1, [2, 1, 3, 3]);
    cnn.convs[1].conv.weight = tensor(&conv2, [2, 2, 3, 3]);
    for conv in &mut cnn.convs {
        conv.conv.bias = Some(tensor(&[0.0, 0.0], [2]));
    }
    // burn keeps a linear layer's weight as [inputs, outputs].
    cnn.dense[0].weight = tensor(&dense, [288, 1]);
    cnn.dense[0].bias = Some(tensor(&[0.0], [1]));
    let preprocess = Preprocess {
        channels: 1,
        height: 28,
        width: 28,
        normalization: Normalization::identity(1),
        crop: Crop::None,
    };
    let model = SavedModel {
        network: Network::Plain(cnn),
        meta: ModelMeta::new(arch, classes, preprocess, false),
    };
    let pixels = input.iter().map(|v| (v * 255.0).round() as u8).collect();
    let input = GrayImage::from_raw(28, 28, pixels).expect("28 × 28 values");
    Ok(LessonWorkbook {
        model,
        input,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::{at, column_name};

    #[test]
    fn references_and_column_names() {
        assert_eq!(at("A2"), (1, 0));
        assert_eq!(at("AD11"), (10, 29));
        assert_eq!(at("EN4"), (3, 143));
        assert_eq!(column_name(143), "EN");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
    }
}
