//! The description of a plain CNN: conv blocks (kernels, padding, pool) then dense layers.
//! It is stored in every saved model so the network can be rebuilt exactly.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One conv block: `out` kernels of `kernel × kernel` (spanning all input channels), ReLU, optional max-pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvSpec {
    /// Number of kernels (output channels).
    pub out: usize,
    /// Kernel side (odd).
    pub kernel: usize,
    /// Zero padding on every side (0 = valid).
    pub padding: usize,
    /// Max-pool window after the ReLU (0 = none).
    pub pool: usize,
}

/// A plain CNN: input shape, conv blocks, hidden dense widths, number of classes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CnnSpec {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// The conv blocks in order.
    pub convs: Vec<ConvSpec>,
    /// Widths of the hidden dense layers (each followed by ReLU).
    pub hidden: Vec<usize>,
    /// Output classes (the last dense layer's width).
    pub classes: usize,
}

/// (channels, height, width) of a stack of feature maps.
pub type MapShape = (usize, usize, usize);

/// The named architectures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModelPreset {
    /// conv3×3(32, pad 1)-ReLU-pool2-conv3×3(64, pad 1)-ReLU-pool2-fc(128)-ReLU-fc(classes):
    /// the standard small MNIST CNN (PyTorch fixture `simple_cnn_sgd_steps`).
    #[default]
    SimpleCnn,
    /// fast.ai's spreadsheet: conv 2 kernels 3×3 (valid)-ReLU-conv 2 kernels 2×3×3 (valid)-ReLU-
    /// pool2-dense(classes).
    Spreadsheet,
}

impl ModelPreset {
    /// All presets with their CLI names.
    pub const ALL: [(&'static str, ModelPreset); 2] = [
        ("simple_cnn", ModelPreset::SimpleCnn),
        ("spreadsheet", ModelPreset::Spreadsheet),
    ];

    /// Looks a preset up by CLI name.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                Error::Invalid(format!(
                    "unknown architecture '{name}': expected one of {}",
                    names.join(", ")
                ))
            })
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map(|(n, _)| *n)
            .unwrap()
    }

    /// The spec for inputs of `channels × height × width` and `classes` outputs.
    pub fn spec(self, channels: usize, height: usize, width: usize, classes: usize) -> CnnSpec {
        let conv = |out, padding, pool| ConvSpec {
            out,
            kernel: 3,
            padding,
            pool,
        };
        let (convs, hidden) = match self {
            ModelPreset::SimpleCnn => (vec![conv(32, 1, 2), conv(64, 1, 2)], vec![128]),
            ModelPreset::Spreadsheet => (vec![conv(2, 0, 0), conv(2, 0, 2)], vec![]),
        };
        CnnSpec {
            channels,
            height,
            width,
            convs,
            hidden,
            classes,
        }
    }
}

impl CnnSpec {
    /// The (channels, height, width) after each conv block, and the flattened size at the end.
    pub fn shapes(&self) -> Result<(Vec<MapShape>, usize)> {
        let (mut c, mut h, mut w) = (self.channels, self.height, self.width);
        let mut out = Vec::new();
        for (i, conv) in self.convs.iter().enumerate() {
            let grow = 2 * conv.padding + 1;
            if h + grow <= conv.kernel || w + grow <= conv.kernel || conv.kernel % 2 == 0 {
                return Err(Error::Invalid(format!(
                    "conv layer {} ({}×{} kernel) does not fit its {h}×{w} input",
                    i + 1,
                    conv.kernel,
                    conv.kernel
                )));
            }
            h = h + 2 * conv.padding + 1 - conv.kernel;
            w = w + 2 * conv.padding + 1 - conv.kernel;
            if conv.pool >= 2 {
                h /= conv.pool;
                w /= conv.pool;
            }
            if h == 0 || w == 0 {
                return Err(Error::Invalid(format!(
                    "the image is too small: layer {} leaves nothing",
                    i + 1
                )));
            }
            c = conv.out;
            out.push((c, h, w));
        }
        Ok((out, c * h * w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_shapes_match_the_lesson() {
        let (shapes, flat) = ModelPreset::SimpleCnn.spec(1, 28, 28, 10).shapes().unwrap();
        assert_eq!(shapes, vec![(32, 14, 14), (64, 7, 7)]);
        assert_eq!(flat, 3136);
        // the spreadsheet: 28 → 26 → 24 → pool 12; two channels
        let (shapes, flat) = ModelPreset::Spreadsheet
            .spec(1, 28, 28, 10)
            .shapes()
            .unwrap();
        assert_eq!(shapes, vec![(2, 26, 26), (2, 12, 12)]);
        assert_eq!(flat, 288);
        assert!(ModelPreset::SimpleCnn.spec(1, 2, 2, 10).shapes().is_err());
    }
}
