//! The kernel figure: input, raw response (green/red), after ReLU, after max-pool — side by side.

use std::path::Path;

use super::{FeatureMaps, Kernel, Padding, convolve};
use crate::error::Result;
use crate::plot::{Canvas, ColorMode, map_to_image, picture};

/// Everything the kernel figure shows, computed once so the CLI can also print numbers from it.
pub struct KernelFigure {
    /// The input planes (1 for luminance, 3 for RGB), values in 0..1.
    pub input: FeatureMaps,
    /// The kernel as applied (spanning the input's channels).
    pub kernel: Kernel,
    /// Border handling.
    pub padding: Padding,
    /// The raw response.
    pub response: FeatureMaps,
    /// The response after ReLU.
    pub relu: FeatureMaps,
    /// After max-pool (`None` when pooling is off).
    pub pooled: Option<FeatureMaps>,
    /// Pool window (0 = none).
    pub pool: usize,
}

impl KernelFigure {
    /// Applies `kernel` to `input` (a 2-D kernel is stacked over the input's channels).
    pub fn compute(
        input: FeatureMaps,
        kernel: &Kernel,
        padding: Padding,
        pool: usize,
    ) -> Result<Self> {
        let kernel = kernel.for_channels(input.channels)?;
        let response = convolve(&input, std::slice::from_ref(&kernel), &[0.0], padding)?;
        let relu = response.relu();
        // A map smaller than the window has nothing to pool: it is shown unpooled.
        let fits = relu.height >= pool && relu.width >= pool;
        let pooled = (pool >= 2 && fits).then(|| relu.max_pool(pool));
        Ok(Self {
            input,
            kernel,
            padding,
            response,
            relu,
            pooled,
            pool,
        })
    }
}

const MAX_PANEL: u32 = 360;
const PAD: u32 = 16;
const TITLE: u32 = 28;

fn scale_for(w: usize, h: usize) -> u32 {
    let big = w.max(h).max(1) as u32;
    (MAX_PANEL / big).max(1)
}

/// Draws the figure to `path`. `gray` renders responses in grayscale instead of green/red.
pub fn render_kernel_figure(fig: &KernelFigure, gray: bool, path: &Path) -> Result<()> {
    let (lo, hi) = fig.response.range();
    // Full brightness at the 99.5th percentile of |response|, so a few extreme pixels do not leave
    // the rest of a photo black; larger values saturate.
    let scale = percentile_abs(&fig.response.data, 0.995).max(1e-6);
    let mode = if gray {
        ColorMode::Gray { lo, hi }
    } else {
        ColorMode::Signed { scale }
    };
    let relu_mode = if gray {
        ColorMode::Gray {
            lo: 0.0,
            hi: hi.max(1e-6),
        }
    } else {
        mode
    };
    let input_img = picture(&fig.input.fit_within(MAX_PANEL as usize));
    let input_label = if fig.input.channels == 3 {
        "input (RGB)"
    } else {
        "input (grayscale)"
    };
    let mut panels: Vec<(String, image::RgbImage)> = vec![
        (
            format!("{input_label} {}×{}", fig.input.width, fig.input.height),
            input_img,
        ),
        (
            format!(
                "kernel response {}×{}",
                fig.response.width, fig.response.height
            ),
            map_to_image(&fig.response.fit_within(MAX_PANEL as usize), 0, mode),
        ),
        (
            "after ReLU".to_string(),
            map_to_image(&fig.relu.fit_within(MAX_PANEL as usize), 0, relu_mode),
        ),
    ];
    if let Some(p) = &fig.pooled {
        panels.push((
            format!(
                "after {0}×{0} max-pool {1}×{2}",
                fig.pool, p.width, p.height
            ),
            map_to_image(&p.fit_within(MAX_PANEL as usize), 0, relu_mode),
        ));
    }
    // Every panel uses the scale of the largest so sizes compare honestly (pooled maps look smaller).
    let base = scale_for(panels[0].1.width() as usize, panels[0].1.height() as usize);
    let panel_w = panels
        .iter()
        .map(|(_, im)| im.width() * base)
        .max()
        .unwrap_or(1)
        .max(220);
    let panel_h = panels
        .iter()
        .map(|(_, im)| im.height() * base)
        .max()
        .unwrap_or(1);
    let footer = 60 + 18 * (fig.kernel.height as u32 + 1);
    let width = PAD + panels.len() as u32 * (panel_w + PAD);
    let height = TITLE + PAD + panel_h + footer;
    let mut canvas = Canvas::new(width, height);
    for (i, (label, img)) in panels.iter().enumerate() {
        let x = PAD + i as u32 * (panel_w + PAD);
        canvas.text(x as i32, 6, 16.0, label, [0, 0, 0]);
        canvas.blit(img, x, TITLE + PAD / 2, base);
    }
    let mut y = (TITLE + PAD + panel_h + 8) as i32;
    let legend = if gray {
        format!("grayscale: black = {lo:.3}, white = {hi:.3}")
    } else {
        format!(
            "green = positive, red = negative, black = 0; full brightness = ±{scale:.3} \
             (99.5th percentile of |response|; range {lo:.3} to {hi:.3})"
        )
    };
    canvas.text(PAD as i32, y, 15.0, &legend, [0, 0, 0]);
    y += 20;
    let caption = format!(
        "{}×{}×{} kernel, {}",
        fig.kernel.channels,
        fig.kernel.height,
        fig.kernel.width,
        fig.padding.describe(fig.kernel.height, fig.kernel.width)
    );
    canvas.text(PAD as i32, y, 15.0, &caption, [0, 0, 0]);
    y += 22;
    for c in 0..fig.kernel.channels {
        let x = (PAD + 12 + c as u32 * (fig.kernel.width as u32 * 52 + 40)) as i32;
        let mut row_y = y;
        if fig.kernel.channels > 1 {
            canvas.text(x, row_y, 14.0, &format!("channel {c}"), [40, 40, 40]);
            row_y += 18;
        }
        for r in 0..fig.kernel.height {
            let row: Vec<String> = (0..fig.kernel.width)
                .map(|k| format!("{:>6.2}", fig.kernel.get(c, r, k)))
                .collect();
            canvas.text(
                x,
                row_y,
                14.0,
                &format!("[{}]", row.join(" ")),
                [40, 40, 40],
            );
            row_y += 18;
        }
    }
    canvas.save(path)
}

/// The `q` quantile of |values| (0 for no values): the colour scale of response figures.
pub fn percentile_abs(values: &[f32], q: f64) -> f32 {
    let mut a: Vec<f32> = values.iter().map(|v| v.abs()).collect();
    if a.is_empty() {
        return 0.0;
    }
    let k = ((a.len() - 1) as f64 * q).round() as usize;
    *a.select_nth_unstable_by(k, f32::total_cmp).1
}
