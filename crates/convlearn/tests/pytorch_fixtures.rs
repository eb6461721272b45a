//! Against PyTorch: the small CNN's forward, loss, gradients and two SGD steps; BCE with logits;
//! BatchNorm in train mode. Fixtures: `../shared/fixtures/*.safetensors` (made by make_torch_fixtures.py).

mod common;

use burn::module::Module;
use burn::module::{Param, RunningState};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{assert_close, require_shared};
use convlearn::device::{inference_device, training_device};
use convlearn::host::values;
use convlearn::learner::{bce_with_logits, cross_entropy};
use convlearn::models::{BatchNorm, Cnn, ModelPreset, load_torch_cnn_weights};
use convlearn::tensor_file::TensorFile;

fn tensor<const D: usize>(file: &TensorFile, name: &str, device: &Device) -> Tensor<D> {
    let t = file.get(name).unwrap();
    let shape: [usize; D] = t.shape.clone().try_into().unwrap();
    Tensor::from_data(TensorData::new(t.values.clone(), shape), device)
}

/// The fixture's class labels `y`.
fn labels(file: &TensorFile, device: &Device) -> Tensor<1, Int> {
    let y: Vec<i64> = file
        .get("y")
        .unwrap()
        .values
        .iter()
        .map(|&v| v as i64)
        .collect();
    let n = y.len();
    Tensor::from_data(TensorData::new(y, [n]), device)
}

/// (name in PyTorch, values of the matching burn parameter in PyTorch layout)
fn torch_params(cnn: &Cnn) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    for (i, b) in cnn.convs.iter().enumerate() {
        out.push((format!("conv{}.weight", i + 1), values(b.conv.weight.val())));
        out.push((
            format!("conv{}.bias", i + 1),
            values(b.conv.bias.as_ref().unwrap().val()),
        ));
    }
    for (j, l) in cnn.dense.iter().enumerate() {
        out.push((
            format!("fc{}.weight", j + 1),
            values(l.weight.val().transpose()),
        ));
        out.push((
            format!("fc{}.bias", j + 1),
            values(l.bias.as_ref().unwrap().val()),
        ));
    }
    out
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn simple_cnn_matches_pytorch_forward_loss_gradients_and_two_sgd_steps() {
    let dir = require_shared();
    let f = TensorFile::read(&dir.join("fixtures/simple_cnn_sgd_steps.safetensors")).unwrap();
    let device = training_device();
    let spec = ModelPreset::SimpleCnn.spec(1, 28, 28, 10);
    let mut model = load_torch_cnn_weights(Cnn::new(&spec, &device).unwrap(), &f, "init.").unwrap();
    let x: Tensor<4> = tensor(&f, "x", &device);
    let y = labels(&f, &device);
    let mut optim = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
        ))
        .init();
    for step in 1..=2 {
        let logits = model.forward(x.clone());
        let loss = cross_entropy(logits.clone(), y.clone());
        assert_close(
            &values(loss.clone()),
            &f.get(&format!("loss{step}")).unwrap().values,
            1e-5,
            "loss",
        );
        let grads = loss.backward();
        if step == 1 {
            assert_close(
                &values(logits),
                &f.get("logits1").unwrap().values,
                1e-4,
                "logits1",
            );
            for (i, b) in model.convs.iter().enumerate() {
                let g = b.conv.weight.val().grad(&grads).unwrap();
                assert_close(
                    &values(g),
                    &f.get(&format!("grad1.conv{}.weight", i + 1))
                        .unwrap()
                        .values,
                    1e-4,
                    "conv grad",
                );
                let g = b.conv.bias.as_ref().unwrap().val().grad(&grads).unwrap();
                assert_close(
                    &values(g),
                    &f.get(&format!("grad1.conv{}.bias", i + 1)).unwrap().values,
                    1e-4,
                    "bias grad",
                );
            }
            for (j, l) in model.dense.iter().enumerate() {
                let g = l.weight.val().grad(&grads).unwrap().transpose();
                assert_close(
                    &values(g),
                    &f.get(&format!("grad1.fc{}.weight", j + 1)).unwrap().values,
                    1e-4,
                    "fc grad",
                );
            }
        }
        model = optim.step(
            0.05,
            model.clone(),
            GradientsParams::from_grads(grads, &model),
        );
        for (name, v) in torch_params(&model) {
            let expected = &f.get(&format!("after{step}.{name}")).unwrap().values;
            assert_close(&v, expected, 1e-4, &format!("after{step}.{name}"));
        }
    }
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn softmax_cross_entropy_and_bce_with_logits_match_pytorch() {
    let dir = require_shared();
    let f = TensorFile::read(&dir.join("fixtures/simple_cnn_sgd_steps.safetensors")).unwrap();
    let device = Device::flex();
    let logits: Tensor<2> = tensor(&f, "logits1", &device);
    let target: Tensor<2> = tensor(&f, "multilabel_target", &device);
    let bce = values(bce_with_logits(logits.clone(), target));
    assert_close(
        &bce,
        &f.get("bce_logits_loss").unwrap().values,
        1e-6,
        "bce_logits_loss",
    );
    let y = labels(&f, &device);
    assert_close(
        &values(cross_entropy(logits, y)),
        &f.get("loss1").unwrap().values,
        1e-6,
        "loss1",
    );
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn batchnorm_in_train_mode_matches_pytorch() {
    let dir = require_shared();
    let f = TensorFile::read(&dir.join("fixtures/batchnorm_train.safetensors")).unwrap();
    let device = training_device();
    let mut bn = BatchNorm::new(4, &device);
    bn.gamma = Param::from_tensor(tensor(&f, "weight", &device));
    bn.beta = Param::from_tensor(tensor(&f, "bias", &device));
    bn.running_mean = RunningState::new(tensor(&f, "running_mean_before", &device));
    bn.running_var = RunningState::new(tensor(&f, "running_var_before", &device));
    let x: Tensor<4> = tensor(&f, "x", &device);
    let y = bn.forward(x.clone());
    assert_close(
        &values(y),
        &f.get("y_train").unwrap().values,
        1e-4,
        "y_train",
    );
    assert_close(
        &values(bn.running_mean.value_sync()),
        &f.get("running_mean_after").unwrap().values,
        1e-5,
        "running_mean",
    );
    assert_close(
        &values(bn.running_var.value_sync()),
        &f.get("running_var_after").unwrap().values,
        1e-5,
        "running_var (unbiased)",
    );
    let eval = bn.valid();
    let y_eval = eval.forward(Tensor::<4>::from_data(x.into_data(), &inference_device()));
    assert_close(
        &values(y_eval),
        &f.get("y_eval_after").unwrap().values,
        1e-4,
        "y_eval_after",
    );
}
