//! Layer groups on a pretrained architecture (randomly initialised: no data needed): a group at rate
//! 0 does not move, `freeze` trains only the head, `bn_freeze` keeps running statistics fixed; the LR
//! finder on precomputed activations restores the head; a diverging loss stops with the epoch and
//! batch. (The LR finder on a whole network: `lr_finder.rs`.)

use convlearn::data::{Crop, ImageSet, Normalization, Preprocess, generate_shapes};
use convlearn::device::training_device;
use convlearn::host::values;
use convlearn::learner::{FitConfig, LayerRates, Learner, lr_find_head};
use convlearn::model_file::{FORMAT_VERSION, ModelMeta};
use convlearn::models::{
    ArchSpec, BackboneKind, Body, HeadKind, HeadSpec, ModelPreset, Network, PaddingStyle,
};
use convlearn::recipes::scratch_learner;

fn photos() -> ImageSet {
    let n = 8;
    let pixels = (0..n * 3 * 32 * 32)
        .map(|i| ((i * 7919) % 251) as u8)
        .collect();
    ImageSet::new(
        3,
        32,
        32,
        pixels,
        (0..n).map(|i| i % 2).collect::<Vec<_>>(),
        vec!["a".into(), "b".into()],
    )
    .unwrap()
}

fn learner() -> Learner {
    let arch = ArchSpec::Pretrained {
        backbone: BackboneKind::Resnet18,
        padding: PaddingStyle::Torch,
        head: HeadSpec {
            kind: HeadKind::Fastai,
            hidden: 16,
            classes: 2,
        },
    };
    let device = training_device();
    let meta = ModelMeta {
        format_version: FORMAT_VERSION,
        multi_label: false,
        threshold: 0.5,
        augment: Default::default(),
        arch: arch.clone(),
        classes: vec!["a".into(), "b".into()],
        preprocess: Preprocess {
            channels: 3,
            height: 32,
            width: 32,
            normalization: Normalization::imagenet(),
            crop: Crop::None,
        },
    };
    Learner::new(Network::new(&arch, &device).unwrap(), meta, device)
}

/// (stem conv weight, layer4 conv weight, head output weight, stem BN running mean, head BN running mean)
fn snapshot(l: &Learner) -> [Vec<f32>; 5] {
    let Network::Pretrained(p) = &l.model else {
        panic!("pretrained")
    };
    let Body::ResNet(r) = &p.body else {
        panic!("resnet")
    };
    let convlearn::models::Head::Fastai(h) = &p.head else {
        panic!("fastai head")
    };
    let last = match &r.layer4[1] {
        convlearn::models::ResBlock::Basic(b) => values(b.conv2.conv.weight.val()),
        convlearn::models::ResBlock::Bottleneck(b) => values(b.conv3.conv.weight.val()),
    };
    [
        values(r.stem.conv.weight.val()),
        last,
        values(h.fc2.weight.val()),
        values(r.stem.bn.running_mean.value_sync()),
        values(h.bn1.running_mean.value_sync()),
    ]
}

fn moved(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn fit(l: &mut Learner, lr: &str) {
    let set = photos();
    let cfg = FitConfig {
        epochs: 1,
        batch_size: 4,
        lr: LayerRates::parse(lr).unwrap(),
        verbose: false,
        ..FitConfig::default()
    };
    l.fit(&set, &set, &cfg).unwrap();
}

#[test]
fn a_group_at_rate_zero_does_not_move() {
    let mut l = learner();
    let before = snapshot(&l);
    fit(&mut l, "0,1e-2,1e-2");
    let after = snapshot(&l);
    assert_eq!(moved(&before[0], &after[0]), 0.0, "early body at rate 0");
    assert!(moved(&before[1], &after[1]) > 0.0, "late body trains");
    assert!(moved(&before[2], &after[2]) > 0.0, "head trains");
    assert!(
        moved(&before[3], &after[3]) > 0.0,
        "BN statistics update without bn_freeze"
    );
}

#[test]
fn freeze_trains_only_the_head_and_bn_freeze_fixes_statistics() {
    let mut l = learner();
    l.freeze();
    let before = snapshot(&l);
    fit(&mut l, "1e-2");
    let after = snapshot(&l);
    assert_eq!(moved(&before[0], &after[0]), 0.0);
    assert_eq!(moved(&before[1], &after[1]), 0.0);
    assert_eq!(
        moved(&before[3], &after[3]),
        0.0,
        "frozen body BN in eval mode"
    );
    assert!(
        moved(&before[2], &after[2]) > 0.0 && moved(&before[4], &after[4]) > 0.0,
        "head and its BN train"
    );

    let mut l = learner();
    l.bn_freeze(true);
    let before = snapshot(&l);
    fit(&mut l, "1e-2");
    let after = snapshot(&l);
    assert_eq!(
        moved(&before[3], &after[3]),
        0.0,
        "running mean fixed with bn_freeze"
    );
    assert!(moved(&before[0], &after[0]) > 0.0, "weights still train");
    assert!(
        moved(&before[4], &after[4]) > 0.0,
        "the head's BN is not the body's"
    );
}

#[test]
fn a_diverging_loss_stops_with_epoch_and_batch() {
    let set = generate_shapes(240, 28, 3);
    let mut l = scratch_learner(ModelPreset::SimpleCnn, &set, 0).unwrap();
    let cfg = FitConfig {
        epochs: 2,
        batch_size: 16,
        // an infinite rate turns the weights into NaN at the first step: the next loss is NaN (a large
        // finite rate is not enough — it can kill every ReLU and leave a finite loss)
        lr: LayerRates::Single(f64::INFINITY),
        verbose: false,
        ..FitConfig::default()
    };
    let err = l.fit(&set, &set, &cfg).expect_err("diverges").to_string();
    assert!(
        err.contains("epoch 1") && err.contains("batch") && err.contains("lower learning rate"),
        "{err}"
    );
}

#[test]
fn lr_find_on_precomputed_activations_sweeps_a_hundred_steps_and_restores_the_head() {
    let mut l = learner();
    l.freeze();
    let set = photos();
    let features = l.precompute(&set, 4, "precompute", false).unwrap();
    assert_eq!(
        features.dim,
        2 * 512,
        "concat pool of resnet18's 512 channels"
    );
    let before = snapshot(&l);
    let cfg = FitConfig {
        batch_size: 4,
        verbose: false,
        ..FitConfig::default()
    };
    let f = lr_find_head(&mut l, &features, &cfg).unwrap();
    // 8 activations in batches of 4 are 2 steps a pass: the sweep goes over them again and again
    // (until the loss diverges, which a random head on random pictures may do before step 100)
    assert!(f.lrs.len() > 10, "{} steps", f.lrs.len());
    assert!(f.lrs.windows(2).all(|w| w[1] > w[0]), "exponential sweep");
    let after = snapshot(&l);
    for (i, what) in [
        "stem conv",
        "layer4 conv",
        "head output",
        "stem BN mean",
        "head BN mean",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(moved(&before[i], &after[i]), 0.0, "{what} restored");
    }
}
