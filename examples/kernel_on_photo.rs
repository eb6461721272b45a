//! The lesson's first step on a real photo: the bottom-edge kernel, ReLU, a 2×2 max-pool.
//!
//! `cargo run --release --example kernel_on_photo [PHOTO]` (default: the shared `cat.bmp`, or a
//! generated picture without the shared data). Writes `edges.png` beside where it runs.

use convlearn::data::{image_to_maps, load_image};
use convlearn::kernels::{FeatureMaps, Kernel};

fn main() -> convlearn::Result<()> {
    let shared = std::env::var("CONVLEARN_DATA").unwrap_or_else(|_| "../shared".into());
    let photo = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("{shared}/data/images/cat.bmp"));
    let picture = match load_image(photo.as_ref()) {
        Ok(image) => image_to_maps(&image, 1, Some((224, 224)))?,
        Err(e) => {
            eprintln!("{e}; using a generated picture (a bright disc on dark)");
            let disc = (0..64 * 64).map(|i| {
                let (y, x) = ((i / 64) as f32 - 32.0, (i % 64) as f32 - 32.0);
                if x * x + y * y < 400.0 { 1.0 } else { 0.0 }
            });
            FeatureMaps::new(1, 64, 64, disc.collect())
        }
    };
    let kernel = Kernel::parse("-1 -1 -1; 0 0 0; 1 1 1")?;
    let response = kernel.apply(&picture)?;
    let activated = response.relu();
    let pooled = activated.max_pool(2);
    let (lo, hi) = response.range();
    let lit = activated.data.iter().filter(|&&v| v > 0.5).count();
    println!(
        "{}×{} picture → response {}×{} in [{lo:.2}, {hi:.2}]; {lit} activations above 0.5 after ReLU; \
         max-pooled to {}×{}",
        picture.width, picture.height, response.width, response.height, pooled.width, pooled.height
    );
    let peak = hi.max(1e-6);
    let gray =
        image::GrayImage::from_fn(activated.width as u32, activated.height as u32, |x, y| {
            image::Luma([(255.0 * activated.get(0, y as usize, x as usize) / peak) as u8])
        });
    gray.save("edges.png")
        .map_err(|e| convlearn::Error::Invalid(format!("edges.png: {e}")))?;
    println!("wrote edges.png (white where the picture goes from dark above to bright below)");
    Ok(())
}
