//! The library's picture type: a stack of 2-D planes (channels × height × width) in plain Rust,
//! which images are read into and the teaching views compute on.

/// `channels` planes of `height × width` values, stored channel-major, row-major (like a CHW tensor).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMaps {
    /// Number of planes.
    pub channels: usize,
    /// Rows per plane.
    pub height: usize,
    /// Columns per plane.
    pub width: usize,
    /// `channels * height * width` values.
    pub data: Vec<f32>,
}

impl FeatureMaps {
    /// Wraps `data`; panics if its length is not `channels * height * width`.
    pub fn new(channels: usize, height: usize, width: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            channels * height * width,
            "feature maps of shape {channels}×{height}×{width} need {} values",
            channels * height * width
        );
        Self {
            channels,
            height,
            width,
            data,
        }
    }

    /// All zeros.
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Self::new(
            channels,
            height,
            width,
            vec![0.0; channels * height * width],
        )
    }

    /// The value at channel `c`, row `y`, column `x`.
    pub fn get(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.height + y) * self.width + x]
    }

    /// Sets the value at channel `c`, row `y`, column `x`.
    pub fn set(&mut self, c: usize, y: usize, x: usize, v: f32) {
        self.data[(c * self.height + y) * self.width + x] = v;
    }

    /// One plane as a new single-channel map.
    pub fn plane(&self, c: usize) -> FeatureMaps {
        let n = self.height * self.width;
        FeatureMaps::new(
            1,
            self.height,
            self.width,
            self.data[c * n..(c + 1) * n].to_vec(),
        )
    }

    /// Minimum and maximum over all values (0, 0 when empty).
    pub fn range(&self) -> (f32, f32) {
        if self.data.is_empty() {
            return (0.0, 0.0);
        }
        self.data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    /// At most `max` values along each side: large maps (photos) are sampled every n-th value so
    /// they fit a figure; small ones are returned as they are.
    pub fn fit_within(&self, max: usize) -> FeatureMaps {
        let step = self.width.max(self.height).div_ceil(max.max(1)).max(1);
        if step == 1 {
            return self.clone();
        }
        let (h, w) = (self.height / step, self.width / step);
        let mut out = FeatureMaps::zeros(self.channels, h, w);
        for c in 0..self.channels {
            for y in 0..h {
                for x in 0..w {
                    out.set(c, y, x, self.get(c, y * step, x * step));
                }
            }
        }
        out
    }

    /// ReLU: negatives become zero.
    pub fn relu(&self) -> FeatureMaps {
        FeatureMaps::new(
            self.channels,
            self.height,
            self.width,
            self.data.iter().map(|v| v.max(0.0)).collect(),
        )
    }

    /// Max-pool with a `size × size` window and stride `size` (a trailing partial window is dropped,
    /// as in PyTorch's default). `size` 0 or 1 returns a copy.
    pub fn max_pool(&self, size: usize) -> FeatureMaps {
        if size <= 1 {
            return self.clone();
        }
        let (h, w) = (self.height / size, self.width / size);
        let mut out = FeatureMaps::zeros(self.channels, h, w);
        for c in 0..self.channels {
            for y in 0..h {
                for x in 0..w {
                    let mut m = f32::NEG_INFINITY;
                    for dy in 0..size {
                        for dx in 0..size {
                            m = m.max(self.get(c, y * size + dy, x * size + dx));
                        }
                    }
                    out.set(c, y, x, m);
                }
            }
        }
        out
    }
}
