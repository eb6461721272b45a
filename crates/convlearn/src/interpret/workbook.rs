//! A plain CNN as a live spreadsheet, the lesson's `conv-example.xlsx` for your own network and
//! picture: the input as numbers under a colour scale, every kernel and bias, every convolution
//! output as `=MAX(0, SUMPRODUCT(window, kernel) + … + bias)` (one SUMPRODUCT per input channel),
//! each max-pool as `=MAX(…)`, the dense layers as SUMPRODUCTs and the output as softmax (or
//! sigmoid). Every formula carries its value as convlearn computed it (the network's own activations
//! for the conv and pool cells), so the file opens with the numbers shown; change a pixel or a
//! weight and the spreadsheet recomputes everything after it.

use std::path::Path;

use rust_xlsxwriter::utility::{cell_range, row_col_to_cell};
use rust_xlsxwriter::{ConditionalFormat3ColorScale, Format, Formula, Workbook, Worksheet};
use serde::Serialize;

use super::model_input;
use crate::device::inference_device;
use crate::error::{Error, Result};
use crate::feature_maps::FeatureMaps;
use crate::host::values;
use crate::model_file::SavedModel;
use crate::models::{ArchSpec, Cnn, Network};

/// Formula cells a workbook may hold: the spreadsheet preset needs about 2 800; `simple_cnn`'s
/// 32 + 64 kernels would need about 47 000 cells holding 435 000 SUMPRODUCTs, more than a spreadsheet
/// program recalculates comfortably.
pub const MAX_FORMULA_CELLS: usize = 20_000;

/// What [`write_workbook`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct WorkbookReport {
    /// Formula cells.
    pub formulas: usize,
    /// Where each layer's block starts (`"conv1" → "B40"`), in order.
    pub layers: Vec<(String, String)>,
    /// Each conv layer's weight cells: `[kernel][input channel]` → the cell of its top-left weight.
    pub kernel_cells: Vec<Vec<Vec<String>>>,
    /// The output cells (logits), in class order.
    pub logit_cells: Vec<String>,
    /// The probability cells, in class order.
    pub probability_cells: Vec<String>,
    /// The logits as the workbook's cached values hold them.
    pub logits: Vec<f64>,
    /// The probabilities as the workbook's cached values hold them.
    pub probabilities: Vec<f64>,
}

/// A grid of cells with its top-left corner at (`row`, `col`).
#[derive(Clone, Copy)]
struct Block {
    row: u32,
    col: u16,
}

impl Block {
    fn cell(&self, i: usize, j: usize) -> (u32, u16) {
        (self.row + i as u32, self.col + j as u16)
    }
    fn name(&self, i: usize, j: usize) -> String {
        let (r, c) = self.cell(i, j);
        row_col_to_cell(r, c)
    }
    /// Rows `i0..=i1`, columns `j0..=j1`.
    fn range(&self, (i0, i1): (usize, usize), (j0, j1): (usize, usize)) -> String {
        let (r0, c0) = self.cell(i0, j0);
        let (r1, c1) = self.cell(i1, j1);
        cell_range(r0, c0, r1, c1)
    }
}

/// Feature maps laid out as blocks side by side, with their values.
struct Sheet<'a> {
    ws: &'a mut Worksheet,
    row: u32,
    formulas: usize,
    bold: Format,
}

/// Maps: one block and one `h × w` plane of values per channel.
struct Maps {
    blocks: Vec<Block>,
    planes: Vec<Vec<f64>>,
    h: usize,
    w: usize,
}

fn xlsx(e: rust_xlsxwriter::XlsxError) -> Error {
    Error::Invalid(format!("cannot write the workbook: {e}"))
}

impl Sheet<'_> {
    fn label(&mut self, row: u32, col: u16, text: &str) -> Result<()> {
        self.ws
            .write_string_with_format(row, col, text, &self.bold)
            .map_err(xlsx)?;
        Ok(())
    }

    fn number(&mut self, (row, col): (u32, u16), v: f64) -> Result<()> {
        self.ws.write_number(row, col, v).map_err(xlsx)?;
        Ok(())
    }

    fn formula(&mut self, (row, col): (u32, u16), text: String, v: f64) -> Result<()> {
        self.formulas += 1;
        if self.formulas > MAX_FORMULA_CELLS {
            return Err(Error::Invalid(format!(
                "this network needs more than {MAX_FORMULA_CELLS} formula cells: the spreadsheet \
                 view is for small networks (the spreadsheet preset needs about 2 800)"
            )));
        }
        let f = Formula::new(text).set_result(format!("{v}"));
        self.ws.write_formula(row, col, f).map_err(xlsx)?;
        Ok(())
    }

    /// `n` blocks of `h × w` side by side on the current row, each titled, the band then passed.
    fn blocks(&mut self, title: &str, n: usize, h: usize, w: usize) -> Result<Vec<Block>> {
        self.label(self.row, 0, title)?;
        let blocks = (0..n)
            .map(|c| Block {
                row: self.row + 1,
                col: 1 + (c * (w + 1)) as u16,
            })
            .collect();
        self.row += h as u32 + 2;
        Ok(blocks)
    }

    fn input(&mut self, maps: &FeatureMaps, normalized: &[f32]) -> Result<Maps> {
        let (h, w) = (maps.height, maps.width);
        let blocks = self.blocks(
            "input (normalised as the model sees it)",
            maps.channels,
            h,
            w,
        )?;
        let mut planes = Vec::new();
        for (c, b) in blocks.iter().enumerate() {
            let plane: Vec<f64> = normalized[c * h * w..(c + 1) * h * w]
                .iter()
                .map(|&v| v as f64)
                .collect();
            for i in 0..h {
                for j in 0..w {
                    self.number(b.cell(i, j), plane[i * w + j])?;
                }
            }
            let (r0, c0) = b.cell(0, 0);
            let (r1, c1) = b.cell(h - 1, w - 1);
            self.ws
                .add_conditional_format(r0, c0, r1, c1, &ConditionalFormat3ColorScale::new())
                .map_err(xlsx)?;
            planes.push(plane);
        }
        Ok(Maps {
            blocks,
            planes,
            h,
            w,
        })
    }

    /// Conv layer `l` of `cnn` on `x`: its kernels and biases, then its ReLU'd outputs, whose
    /// values `planes` the network computed.
    fn conv(
        &mut self,
        cnn: &Cnn,
        l: usize,
        pad: usize,
        x: &Maps,
        planes: Vec<Vec<f64>>,
    ) -> Result<(Maps, Vec<Vec<String>>)> {
        let conv = &cnn.convs[l].conv;
        let weight = conv.weight.val();
        let [out, cin, k, kw] = weight.dims();
        let wv: Vec<f64> = values(weight).into_iter().map(f64::from).collect();
        let bias: Vec<f64> = match &conv.bias {
            Some(b) => values(b.val()).into_iter().map(f64::from).collect(),
            None => vec![0.0; out],
        };
        // Kernels: one band per output channel, its input channels side by side, then the bias.
        self.label(self.row, 0, &format!("conv{} kernels", l + 1))?;
        self.row += 1;
        let mut kernels = Vec::new();
        let mut bias_cells = Vec::new();
        for o in 0..out {
            self.label(self.row, 0, &format!("kernel {o}"))?;
            let mut row_blocks = Vec::new();
            for c in 0..cin {
                let b = Block {
                    row: self.row,
                    col: 1 + (c * (kw + 1)) as u16,
                };
                for i in 0..k {
                    for j in 0..kw {
                        self.number(b.cell(i, j), wv[((o * cin + c) * k + i) * kw + j])?;
                    }
                }
                row_blocks.push(b);
            }
            let bias_col = 1 + (cin * (kw + 1)) as u16;
            self.label(self.row, bias_col, "bias")?;
            self.number((self.row, bias_col + 1), bias[o])?;
            bias_cells.push(row_col_to_cell(self.row, bias_col + 1));
            kernels.push(row_blocks);
            self.row += k as u32 + 1;
        }
        let (h, w) = (x.h + 2 * pad + 1 - k, x.w + 2 * pad + 1 - kw);
        let title = format!(
            "conv{} + ReLU: =MAX(0, SUMPRODUCT(window, kernel) per input channel + bias){}",
            l + 1,
            if pad > 0 {
                format!(", zero padding {pad} (windows clipped at the edge)")
            } else {
                String::new()
            }
        );
        let blocks = self.blocks(&title, out, h, w)?;
        for o in 0..out {
            for i in 0..h {
                for j in 0..w {
                    // Input rows i − pad … i − pad + k − 1, clipped to the map (zero padding).
                    let span = |at: usize, kk: usize, len: usize| {
                        let lo = at.saturating_sub(pad);
                        let hi = (at + kk).saturating_sub(pad + 1).min(len - 1);
                        (lo, hi, lo + pad - at)
                    };
                    let (r0, r1, kr) = span(i, k, x.h);
                    let (c0, c1, kc) = span(j, kw, x.w);
                    let terms: Vec<String> = (0..cin)
                        .map(|c| {
                            format!(
                                "SUMPRODUCT({},{})",
                                x.blocks[c].range((r0, r1), (c0, c1)),
                                kernels[o][c].range((kr, kr + r1 - r0), (kc, kc + c1 - c0))
                            )
                        })
                        .collect();
                    let text = format!("=MAX(0,{}+{})", terms.join("+"), bias_cells[o]);
                    self.formula(blocks[o].cell(i, j), text, planes[o][i * w + j])?;
                }
            }
        }
        let cells = kernels
            .iter()
            .map(|k| k.iter().map(|b| b.name(0, 0)).collect())
            .collect();
        let maps = Maps {
            blocks,
            planes,
            h,
            w,
        };
        Ok((maps, cells))
    }

    /// A `p × p` max-pool (stride `p`, the remainder dropped) of `x`, whose values `planes` the
    /// network computed.
    fn pool(&mut self, l: usize, p: usize, x: &Maps, planes: Vec<Vec<f64>>) -> Result<Maps> {
        let (h, w) = (x.h / p, x.w / p);
        let title = format!("pool{}: =MAX over each {p}×{p} square", l + 1);
        let blocks = self.blocks(&title, x.blocks.len(), h, w)?;
        for (c, b) in blocks.iter().enumerate() {
            for i in 0..h {
                for j in 0..w {
                    let range = x.blocks[c].range((i * p, i * p + p - 1), (j * p, j * p + p - 1));
                    self.formula(b.cell(i, j), format!("=MAX({range})"), planes[c][i * w + j])?;
                }
            }
        }
        Ok(Maps {
            blocks,
            planes,
            h,
            w,
        })
    }
}

/// Writes the workbook of `model` (a plain CNN) on `input` (as [`super::read_model_image`] gives
/// it) to `path`, atomically.
pub fn write_workbook(
    model: &SavedModel,
    input: &FeatureMaps,
    path: &Path,
) -> Result<WorkbookReport> {
    let (mut workbook, report) = build_workbook(model, input)?;
    crate::output_file::write_atomically(path, |tmp| workbook.save(tmp).map_err(xlsx))?;
    Ok(report)
}

/// The workbook of [`write_workbook`] as the bytes of an `.xlsx` file (for a download).
pub fn workbook_bytes(
    model: &SavedModel,
    input: &FeatureMaps,
) -> Result<(Vec<u8>, WorkbookReport)> {
    let (mut workbook, report) = build_workbook(model, input)?;
    Ok((workbook.save_to_buffer().map_err(xlsx)?, report))
}

/// Whether the spreadsheet view can hold `model`: a plain CNN whose workbook needs at most
/// [`MAX_FORMULA_CELLS`] formulas (found by building it once, on a blank picture).
pub fn workbook_fits(model: &SavedModel) -> bool {
    let shape = &model.meta.preprocess;
    let blank = FeatureMaps::zeros(shape.channels, shape.height, shape.width);
    build_workbook(model, &blank).is_ok()
}

/// The workbook of `model` on `input`, and what it holds.
fn build_workbook(model: &SavedModel, input: &FeatureMaps) -> Result<(Workbook, WorkbookReport)> {
    let (Network::Plain(cnn), ArchSpec::Plain { spec, .. }) = (&model.network, &model.meta.arch)
    else {
        return Err(Error::Invalid(format!(
            "the spreadsheet view is for the plain CNNs (spreadsheet, simple_cnn); this model is {}",
            model.meta.arch.name()
        )));
    };
    let device = inference_device();
    let x = model_input(model, input, &device);
    let normalized = values(x.clone());
    // The cached values of the conv and pool cells are the network's own activations, in the
    // order its blocks produce them.
    let (_, stages) = cnn.forward_with_activations(x);
    let mut activations = stages.into_iter().map(|(_, t)| {
        let [_, c, h, w] = t.dims();
        let v: Vec<f64> = values(t).into_iter().map(f64::from).collect();
        v.chunks(h * w)
            .take(c)
            .map(<[f64]>::to_vec)
            .collect::<Vec<_>>()
    });
    let mut next_stage = || activations.next().expect("one stage per conv and per pool");
    let mut workbook = Workbook::new();
    let ws = workbook.add_worksheet();
    ws.set_name("network").map_err(xlsx)?;
    let mut sheet = Sheet {
        ws,
        row: 2,
        formulas: 0,
        bold: Format::new().set_bold(),
    };
    let title = format!(
        "{} on one picture: change an input number or a weight and everything after it recomputes",
        model.meta.arch.name()
    );
    sheet.label(0, 0, &title)?;
    let mut layers = Vec::new();
    let mut kernel_cells = Vec::new();
    let mut maps = sheet.input(input, &normalized)?;
    layers.push(("input".to_string(), maps.blocks[0].name(0, 0)));
    for (l, conv) in spec.convs.iter().enumerate() {
        let (next, cells) = sheet.conv(cnn, l, conv.padding, &maps, next_stage())?;
        maps = next;
        kernel_cells.push(cells);
        layers.push((format!("conv{}", l + 1), maps.blocks[0].name(0, 0)));
        if conv.pool >= 2 {
            maps = sheet.pool(l, conv.pool, &maps, next_stage())?;
            layers.push((format!("pool{}", l + 1), maps.blocks[0].name(0, 0)));
        }
    }
    let (logit_cells, logits) = dense_layers(&mut sheet, cnn, &maps, &mut layers)?;
    let (probability_cells, probabilities) = output(
        &mut sheet,
        &logit_cells,
        &logits,
        model.meta.multi_label,
        &model.meta.classes,
    )?;
    let report = WorkbookReport {
        formulas: sheet.formulas,
        layers,
        kernel_cells,
        logit_cells,
        probability_cells,
        logits,
        probabilities,
    };
    Ok((workbook, report))
}

/// The dense layers: the first over the last maps (its weights laid out as those maps, one band
/// per output), the others over the previous layer's row; ReLU between them. Returns the logit
/// cells and values.
fn dense_layers(
    sheet: &mut Sheet,
    cnn: &Cnn,
    maps: &Maps,
    layers: &mut Vec<(String, String)>,
) -> Result<(Vec<String>, Vec<f64>)> {
    if cnn.dense.is_empty() {
        return Err(Error::Invalid(
            "this network has no dense layer to end the workbook with".into(),
        ));
    }
    let mut row_input: Option<(Vec<String>, Vec<f64>)> = None;
    let last = cnn.dense.len() - 1;
    for (d, layer) in cnn.dense.iter().enumerate() {
        // burn keeps a linear layer's weight as [inputs, outputs].
        let weight = layer.weight.val();
        let [inputs, outputs] = weight.dims();
        let wv: Vec<f64> = values(weight).into_iter().map(f64::from).collect();
        let bias: Vec<f64> = match &layer.bias {
            Some(b) => values(b.val()).into_iter().map(f64::from).collect(),
            None => vec![0.0; outputs],
        };
        let relu = d < last;
        sheet.label(sheet.row, 0, &format!("dense{} weights", d + 1))?;
        sheet.row += 1;
        let mut terms: Vec<Vec<String>> = vec![Vec::new(); outputs];
        let mut sums = bias.clone();
        let mut bias_cells = Vec::new();
        for o in 0..outputs {
            sheet.label(sheet.row, 0, &format!("output {o}"))?;
            match &row_input {
                None => {
                    let (h, w) = (maps.h, maps.w);
                    for (c, plane) in maps.planes.iter().enumerate() {
                        let b = Block {
                            row: sheet.row,
                            col: 1 + (c * (w + 1)) as u16,
                        };
                        for i in 0..h {
                            for j in 0..w {
                                let wt = wv[(c * h * w + i * w + j) * outputs + o];
                                sheet.number(b.cell(i, j), wt)?;
                                sums[o] += wt * plane[i * w + j];
                            }
                        }
                        terms[o].push(format!(
                            "SUMPRODUCT({},{})",
                            maps.blocks[c].range((0, h - 1), (0, w - 1)),
                            b.range((0, h - 1), (0, w - 1))
                        ));
                    }
                    let bias_col = 1 + (maps.planes.len() * (w + 1)) as u16;
                    sheet.label(sheet.row, bias_col, "bias")?;
                    sheet.number((sheet.row, bias_col + 1), bias[o])?;
                    bias_cells.push(row_col_to_cell(sheet.row, bias_col + 1));
                    sheet.row += h as u32 + 1;
                }
                Some((cells, vals)) => {
                    let b = Block {
                        row: sheet.row,
                        col: 1,
                    };
                    for (i, v) in vals.iter().enumerate() {
                        let wt = wv[i * outputs + o];
                        sheet.number(b.cell(0, i), wt)?;
                        sums[o] += wt * v;
                    }
                    let first = &cells[0];
                    let last_cell = &cells[cells.len() - 1];
                    terms[o].push(format!(
                        "SUMPRODUCT({first}:{last_cell},{})",
                        b.range((0, 0), (0, inputs - 1))
                    ));
                    sheet.label(sheet.row, 1 + inputs as u16, "bias")?;
                    sheet.number((sheet.row, 2 + inputs as u16), bias[o])?;
                    bias_cells.push(row_col_to_cell(sheet.row, 2 + inputs as u16));
                    sheet.row += 2;
                }
            }
        }
        let name = if relu {
            format!("dense{} + ReLU", d + 1)
        } else {
            format!("dense{}: the logits", d + 1)
        };
        sheet.label(sheet.row, 0, &name)?;
        let mut cells = Vec::new();
        let mut vals = Vec::new();
        for o in 0..outputs {
            let sum = terms[o].join("+");
            let (text, v) = if relu {
                (format!("=MAX(0,{sum}+{})", bias_cells[o]), sums[o].max(0.0))
            } else {
                (format!("={sum}+{}", bias_cells[o]), sums[o])
            };
            let at = (sheet.row, 1 + o as u16);
            sheet.formula(at, text, v)?;
            cells.push(row_col_to_cell(at.0, at.1));
            vals.push(v);
        }
        layers.push((name, cells[0].clone()));
        sheet.row += 2;
        row_input = Some((cells, vals));
    }
    Ok(row_input.expect("a CNN has a dense layer"))
}

/// The probabilities under the logits: softmax, `=EXP(z − max) / SUMPRODUCT(EXP(all − max))`, or a
/// sigmoid per tag for a multi-label model; the class names above them.
fn output(
    sheet: &mut Sheet,
    logit_cells: &[String],
    logits: &[f64],
    multi_label: bool,
    classes: &[String],
) -> Result<(Vec<String>, Vec<f64>)> {
    let all = format!("{}:{}", logit_cells[0], logit_cells[logit_cells.len() - 1]);
    let peak = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = logits.iter().map(|z| (z - peak).exp()).sum();
    let title = if multi_label {
        "sigmoid: =1/(1+EXP(−z))"
    } else {
        "softmax: =EXP(z − MAX)/SUMPRODUCT(EXP(all − MAX))"
    };
    sheet.label(sheet.row, 0, title)?;
    for (o, class) in classes.iter().enumerate() {
        sheet.label(sheet.row, 1 + o as u16, class)?;
    }
    sheet.row += 1;
    let mut cells = Vec::new();
    let mut probs = Vec::new();
    for (o, z) in logit_cells.iter().enumerate() {
        let (text, p) = if multi_label {
            (
                format!("=1/(1+EXP(-{z}))"),
                1.0 / (1.0 + (-logits[o]).exp()),
            )
        } else {
            (
                format!("=EXP({z}-MAX({all}))/SUMPRODUCT(EXP({all}-MAX({all})))"),
                (logits[o] - peak).exp() / total,
            )
        };
        let at = (sheet.row, 1 + o as u16);
        sheet.formula(at, text, p)?;
        cells.push(row_col_to_cell(at.0, at.1));
        probs.push(p);
    }
    sheet.row += 2;
    Ok((cells, probs))
}
