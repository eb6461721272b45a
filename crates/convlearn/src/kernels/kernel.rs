//! Convolution kernels: presets from the lesson and image-processing classics, and a literal syntax.

use crate::error::{Error, Result};

/// A convolution kernel of `channels × height × width` weights (height and width odd).
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// Input channels the kernel spans (1 for a 2-D kernel, 3 for an RGB kernel).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Weights, channel-major then row-major.
    pub weights: Vec<f32>,
}

/// The preset kernel names, in the order `--help` lists them.
pub const PRESETS: &[&str] = &[
    "identity",
    "blur",
    "gaussian",
    "sharpen",
    "outline",
    "emboss",
    "top-sobel",
    "bottom-sobel",
    "left-sobel",
    "right-sobel",
    "bottom-edge",
    "top-edge",
    "left-edge",
    "right-edge",
];

/// The literal syntax, shown in every parse error.
pub const LITERAL_SYNTAX: &str = "rows separated by ';', numbers by spaces or commas, e.g. \
\"-1 -1 -1; 0 0 0; 1 1 1\"; for a multi-channel kernel separate channels with '|', e.g. \
\"1 0 -1; 1 0 -1; 1 0 -1 | 1 0 -1; 1 0 -1; 1 0 -1 | 1 0 -1; 1 0 -1; 1 0 -1\"; \
height and width must be odd";

impl Kernel {
    /// A single-channel kernel from rows; errors unless rectangular with odd sides.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self> {
        Self::from_channels(&[rows.to_vec()])
    }

    /// A kernel from one row-list per channel; every channel must have the same odd shape.
    pub fn from_channels(channels: &[Vec<Vec<f32>>]) -> Result<Self> {
        let first = channels
            .first()
            .ok_or_else(|| Error::Kernel(format!("empty kernel; expected {LITERAL_SYNTAX}")))?;
        let height = first.len();
        let width = first.first().map_or(0, Vec::len);
        if height == 0 || width == 0 {
            return Err(Error::Kernel(format!(
                "empty kernel; expected {LITERAL_SYNTAX}"
            )));
        }
        let mut weights = Vec::with_capacity(channels.len() * height * width);
        for (c, rows) in channels.iter().enumerate() {
            if rows.len() != height {
                return Err(Error::Kernel(format!(
                    "channel {} has {} rows but channel 1 has {height}; expected {LITERAL_SYNTAX}",
                    c + 1,
                    rows.len()
                )));
            }
            for (r, row) in rows.iter().enumerate() {
                if row.len() != width {
                    return Err(Error::Kernel(format!(
                        "kernel is not rectangular: row {} of channel {} has {} numbers, row 1 has {width}; expected {LITERAL_SYNTAX}",
                        r + 1,
                        c + 1,
                        row.len()
                    )));
                }
                weights.extend_from_slice(row);
            }
        }
        if height % 2 == 0 || width % 2 == 0 {
            return Err(Error::Kernel(format!(
                "kernel is {height}×{width}; {LITERAL_SYNTAX}"
            )));
        }
        Ok(Self {
            channels: channels.len(),
            height,
            width,
            weights,
        })
    }

    /// Parses a literal such as `"-1 -1 -1; 0 0 0; 1 1 1"` (channels separated by `|`).
    pub fn parse(text: &str) -> Result<Self> {
        let mut channels = Vec::new();
        for channel in text.split('|') {
            let mut rows = Vec::new();
            for row in channel.split(';') {
                let row = row.trim();
                if row.is_empty() {
                    continue;
                }
                let numbers = row
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse::<f32>().map_err(|_| {
                            Error::Kernel(format!(
                                "'{s}' in kernel \"{text}\" is not a number; expected {LITERAL_SYNTAX}"
                            ))
                        })
                    })
                    .collect::<Result<Vec<f32>>>()?;
                rows.push(numbers);
            }
            channels.push(rows);
        }
        Self::from_channels(&channels)
    }

    /// A preset by name (see [`PRESETS`]).
    pub fn preset(name: &str) -> Option<Self> {
        let rows: Vec<Vec<f32>> = match name {
            "identity" => vec![vec![0., 0., 0.], vec![0., 1., 0.], vec![0., 0., 0.]],
            "blur" => vec![vec![1. / 9.; 3]; 3],
            "gaussian" => vec![
                vec![1. / 16., 2. / 16., 1. / 16.],
                vec![2. / 16., 4. / 16., 2. / 16.],
                vec![1. / 16., 2. / 16., 1. / 16.],
            ],
            "sharpen" => vec![vec![0., -1., 0.], vec![-1., 5., -1.], vec![0., -1., 0.]],
            "outline" => vec![vec![-1., -1., -1.], vec![-1., 8., -1.], vec![-1., -1., -1.]],
            "emboss" => vec![vec![-2., -1., 0.], vec![-1., 1., 1.], vec![0., 1., 2.]],
            "top-sobel" => vec![vec![1., 2., 1.], vec![0., 0., 0.], vec![-1., -2., -1.]],
            "bottom-sobel" => vec![vec![-1., -2., -1.], vec![0., 0., 0.], vec![1., 2., 1.]],
            "left-sobel" => vec![vec![1., 0., -1.], vec![2., 0., -2.], vec![1., 0., -1.]],
            "right-sobel" => vec![vec![-1., 0., 1.], vec![-2., 0., 2.], vec![-1., 0., 1.]],
            "bottom-edge" => vec![vec![-1., -1., -1.], vec![0., 0., 0.], vec![1., 1., 1.]],
            "top-edge" => vec![vec![1., 1., 1.], vec![0., 0., 0.], vec![-1., -1., -1.]],
            "left-edge" => vec![vec![1., 0., -1.], vec![1., 0., -1.], vec![1., 0., -1.]],
            "right-edge" => vec![vec![-1., 0., 1.], vec![-1., 0., 1.], vec![-1., 0., 1.]],
            _ => return None,
        };
        Some(Self::from_rows(&rows).expect("presets are valid"))
    }

    /// A preset name or a literal matrix.
    pub fn from_spec(spec: &str) -> Result<Self> {
        if let Some(k) = Self::preset(spec.trim()) {
            return Ok(k);
        }
        if spec.chars().any(|c| c.is_ascii_digit()) {
            return Self::parse(spec);
        }
        Err(Error::Kernel(format!(
            "unknown kernel '{spec}': use a preset ({}) or a literal matrix: {LITERAL_SYNTAX}",
            PRESETS.join(", ")
        )))
    }

    /// The same 2-D kernel stacked over `channels` input channels (the lesson's 3×3 → 3×3×3 step).
    /// A kernel that already spans `channels` is returned unchanged.
    pub fn for_channels(&self, channels: usize) -> Result<Self> {
        if self.channels == channels {
            return Ok(self.clone());
        }
        if self.channels != 1 {
            return Err(Error::Kernel(format!(
                "a {}-channel kernel cannot be applied to a {channels}-channel image",
                self.channels
            )));
        }
        Ok(Self {
            channels,
            height: self.height,
            width: self.width,
            weights: self.weights.repeat(channels),
        })
    }

    /// The weight at channel `c`, row `y`, column `x`.
    pub fn get(&self, c: usize, y: usize, x: usize) -> f32 {
        self.weights[(c * self.height + y) * self.width + x]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_lessons_bottom_edge_kernel() {
        let k = Kernel::parse("-1 -1 -1; 0 0 0; 1 1 1").unwrap();
        assert_eq!(k, Kernel::preset("bottom-edge").unwrap());
        assert_eq!((k.channels, k.height, k.width), (1, 3, 3));
    }

    #[test]
    fn parses_commas_five_by_five_and_channels() {
        let k = Kernel::parse("1,2,3,4,5;1 2 3 4 5;0 0 0 0 0;1 1 1 1 1;2 2 2 2 2").unwrap();
        assert_eq!((k.height, k.width), (5, 5));
        assert_eq!(k.get(0, 0, 4), 5.0);
        let k = Kernel::parse("1 0 0;0 0 0;0 0 0 | 0 0 0;0 2 0;0 0 0").unwrap();
        assert_eq!(k.channels, 2);
        assert_eq!(k.get(1, 1, 1), 2.0);
    }

    #[test]
    fn rejects_bad_literals_with_the_expected_form() {
        for bad in [
            "1 2; 3",
            "1 2; 3 4",
            "1 x 1; 0 0 0; 1 1 1",
            "",
            "1 0 0;0 1 0;0 0 1 | 1",
        ] {
            let err = Kernel::from_spec(bad).unwrap_err().to_string();
            assert!(err.contains("rows separated by ';'"), "{bad}: {err}");
        }
        assert!(
            Kernel::from_spec("nonsense")
                .unwrap_err()
                .to_string()
                .contains("bottom-edge")
        );
    }

    #[test]
    fn every_preset_exists_and_stacks_over_rgb() {
        for name in PRESETS {
            let k = Kernel::preset(name).unwrap();
            let rgb = k.for_channels(3).unwrap();
            assert_eq!(rgb.weights.len(), 27);
            assert_eq!(rgb.get(2, 0, 0), k.get(0, 0, 0));
        }
    }
}
