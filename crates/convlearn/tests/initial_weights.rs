//! A seeded network draws all its weights when it is built: a draw from the generator afterwards
//! does not change them. One test alone in its process, since any other test's draw from flex's
//! process-wide generator, on another thread, could fall inside this one's.

use burn::tensor::{Device, Distribution, Tensor};
use convlearn::host::values;
use convlearn::models::{ArchSpec, ModelPreset, Network, build_seeded};

/// The first dense layer's weights of the small CNN built from `seed`; with `interfering`,
/// something else draws from the generator, reseeded, between the build and the first use.
fn dense_weights(seed: u64, interfering: bool) -> Vec<f32> {
    let arch = ArchSpec::Plain {
        preset: ModelPreset::SimpleCnn.name().to_string(),
        spec: ModelPreset::SimpleCnn.spec(1, 28, 28, 6),
    };
    let network = build_seeded(seed, &Device::flex(), |cpu| Network::new(&arch, cpu)).unwrap();
    if interfering {
        Device::flex().seed(seed + 1);
        let _ = values(Tensor::<1>::random(
            [64],
            Distribution::Default,
            &Device::flex(),
        ));
    }
    match &network {
        Network::Plain(cnn) => values(cnn.dense[0].weight.val()),
        Network::Pretrained(_) => unreachable!("a plain network"),
    }
}

#[test]
fn a_seed_draws_every_weight_at_once_and_another_seed_draws_others() {
    let weights = dense_weights(3, false);
    assert!(weights.iter().any(|&w| w != 0.0));
    // Without the draws at build time, the dense layer was drawn at its first use, from the
    // reseeded generator (burn draws a parameter lazily).
    assert_eq!(
        weights,
        dense_weights(3, true),
        "drawn before the other draw"
    );
    assert_ne!(weights, dense_weights(4, false));
}
