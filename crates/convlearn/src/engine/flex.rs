//! convlearn's routines on burn's `flex` CPU backend, each splitting its work across rayon's
//! threads: the passes after a convolution (written in place when its output is not shared), the
//! batched convolution's forward pass (`conv.rs`), the depthwise one (`depthwise.rs`),
//! max-pooling (`max_pool.rs`), BatchNorm with batch statistics (`batch_norm.rs`) and the AdamW
//! step (`adamw.rs`, in place).

use burn::backend::Flex;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Bytes, DType, Shape};
use burn_flex::{FlexTensor, Layout};
use multiversion::multiversion;
use rayon::prelude::*;

use super::batch_norm::{ChannelLayout, affine, channel_statistics, normalize};
use super::buffers::{zero_fill, zeroed};
use super::clamp::{Epilogue, affine_clamp_in_place};
use super::conv::{Grouping, conv_forward};
use super::conv_shape::{ConvGeometry, ConvShape, Pads};
use super::depthwise;
use super::max_pool::{PoolWindow, unpool_plane};
use super::winograd;
use super::{AdamWStep, FusedOps};

/// Elements one rayon task handles at least: below this, splitting costs more than it saves.
const MIN_TASK_ELEMENTS: usize = 1 << 14;

impl FusedOps for Flex {
    fn affine_clamp(
        x: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        lower: f32,
        upper: f32,
    ) -> FlexTensor {
        let layout = ChannelLayout::of(x.layout().shape());
        let scale = f32_values(&scale, "affine_clamp: scale");
        let shift = f32_values(&shift, "affine_clamp: shift");
        let mut out = owned_f32(x, "affine_clamp: x");
        affine_clamp_in_place(out.storage_mut(), layout, [&scale, &shift], [lower, upper]);
        out
    }

    fn bias_clamp(x: FlexTensor, bias: FlexTensor, lower: f32, upper: f32) -> FlexTensor {
        let layout = ChannelLayout::of(x.layout().shape());
        let bias = f32_values(&bias, "bias_clamp: bias");
        // A scale of 1: `v · 1` is `v` exactly.
        let ones = vec![1.0; layout.channels];
        let mut out = owned_f32(x, "bias_clamp: x");
        affine_clamp_in_place(out.storage_mut(), layout, [&ones, &bias], [lower, upper]);
        out
    }

    fn add_clamp(x: FlexTensor, residual: FlexTensor, lower: f32, upper: f32) -> FlexTensor {
        assert_eq!(
            x.layout().shape(),
            residual.layout().shape(),
            "add_clamp: x and residual differ in shape"
        );
        let residual = f32_values(&residual, "add_clamp: residual");
        let mut out = owned_f32(x, "add_clamp: x");
        let data: &mut [f32] = out.storage_mut();
        data.par_chunks_mut(MIN_TASK_ELEMENTS)
            .zip(residual.par_chunks(MIN_TASK_ELEMENTS))
            .for_each(|(values, r)| add_clamp_values(values, r, [lower, upper]));
        out
    }

    fn conv2d_batched(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let (x, weight, shape) = conv_operands(x, weight, &options);
        convolve(&x, &weight, &shape, None)
    }

    fn depthwise_conv2d(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let (x, weight, shape) = depthwise_operands(x, weight, &options);
        convolve_depthwise(&x, &weight, &shape, None)
    }

    fn conv2d_affine_clamp(
        x: FlexTensor,
        weight: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        lower: f32,
        upper: f32,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let scale = f32_values(&scale, "conv2d_affine_clamp: scale");
        let shift = f32_values(&shift, "conv2d_affine_clamp: shift");
        let depthwise = options.groups != 1;
        let (x, weight, shape) = match depthwise {
            true => depthwise_operands(x, weight, &options),
            false => conv_operands(x, weight, &options),
        };
        let epilogue = Epilogue::new(shape.cout, [&scale, &shift], [lower, upper]);
        match depthwise {
            true => convolve_depthwise(&x, &weight, &shape, Some(&epilogue)),
            false => convolve(&x, &weight, &shape, Some(&epilogue)),
        }
    }

    fn batch_norm_clamp(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        lower: f32,
        upper: f32,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let x = owned_f32(x, "batch_norm: x");
        let out = batch_norm_planes(&x, &gamma, &beta, epsilon, [lower, upper]);
        let channels = vec![out.mean.len()];
        (
            out.y,
            f32_tensor(out.mean, channels.clone()),
            f32_tensor(out.variance, channels),
        )
    }

    fn adamw_step(
        param: FlexTensor,
        grad: FlexTensor,
        moment_1: FlexTensor,
        moment_2: FlexTensor,
        step: AdamWStep,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let grad = f32_values(&grad, "adamw: gradient");
        let mut param = owned_f32(param, "adamw: parameter");
        let mut moment_1 = owned_f32(moment_1, "adamw: first moment");
        let mut moment_2 = owned_f32(moment_2, "adamw: second moment");
        step.apply(
            param.storage_mut(),
            &grad,
            moment_1.storage_mut(),
            moment_2.storage_mut(),
        );
        (param, moment_1, moment_2)
    }

    fn max_pool(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: Pads,
    ) -> FlexTensor {
        let window = PoolWindow {
            kernel,
            stride,
            padding,
        };
        max_pool_planes(x, window, false).0
    }
}

/// What [`batch_norm_planes`] computes.
pub(super) struct BatchNormOutput {
    /// The normalised (and clamped) values, shaped as the input.
    pub y: FlexTensor,
    /// The batch mean per channel.
    pub mean: Vec<f32>,
    /// The biased batch variance per channel.
    pub variance: Vec<f32>,
    /// `1 / √(variance + ε)`.
    pub inv_std: Vec<f32>,
    /// γ's values.
    pub gamma: Vec<f32>,
}

/// BatchNorm of the contiguous `x` `[batch, channels, …]` with its batch statistics, clamped to
/// `bounds` (`batch_norm.rs`). Panics, naming the shapes, when γ or β do not match the channels.
pub(super) fn batch_norm_planes(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
    bounds: [f32; 2],
) -> BatchNormOutput {
    let shape = x.layout().shape().to_vec();
    let layout = ChannelLayout::of(&shape);
    let gamma = f32_values(gamma, "batch_norm: gamma").into_owned();
    let beta = f32_values(beta, "batch_norm: beta");
    assert!(
        gamma.len() == layout.channels && beta.len() == layout.channels,
        "batch_norm: input {shape:?} has {} channels, gamma {} and beta {} values",
        layout.channels,
        gamma.len(),
        beta.len()
    );
    let (mean, variance) = channel_statistics(x.storage(), layout);
    let (scale, shift, inv_std) = affine(&gamma, &beta, &mean, &variance, epsilon);
    let y = normalize(x.storage(), layout, &scale, &shift, bounds);
    BatchNormOutput {
        y: f32_tensor(y, shape),
        mean,
        variance,
        inv_std,
        gamma,
    }
}

/// Max-pools every `[h, w]` plane of `x` `[batch, channels, h, w]` in parallel; with `argmax`, also
/// returns where each maximum came from (see [`PoolWindow::pool_plane_argmax`]).
pub(super) fn max_pool_planes(
    x: FlexTensor,
    window: PoolWindow,
    argmax: bool,
) -> (FlexTensor, Option<Vec<u32>>) {
    let x = owned_f32(x, "max_pool: x");
    let shape = x.layout().shape().clone();
    assert_eq!(
        shape.len(),
        4,
        "max_pool: expected [batch, channels, h, w], got {shape:?}"
    );
    let [h, w] = [shape[2], shape[3]];
    let [oh, ow] = window
        .output_size([h, w])
        .unwrap_or_else(|| panic!("max_pool: {window:?} does not fit a {h}×{w} input"));
    let planes = shape[0] * shape[1];
    let fits = oh * ow > 0 && h * w > 0;
    let (len, records) = (planes * oh * ow, if argmax { planes * oh * ow } else { 0 });
    // Every window below writes its output (and its argmax).
    let (mut out, mut at) = if fits {
        (zeroed(len), zeroed(records))
    } else {
        (vec![0.0; len], vec![0; records])
    };
    if fits {
        let input: &[f32] = x.storage();
        let planes_per_task = MIN_TASK_ELEMENTS.div_ceil(h * w);
        let outputs = out.par_chunks_mut(oh * ow).zip(input.par_chunks(h * w));
        if argmax {
            outputs
                .zip(at.par_chunks_mut(oh * ow))
                .with_min_len(planes_per_task)
                .for_each(|((o, i), a)| window.pool_plane_argmax(i, [h, w], o, a));
        } else {
            outputs
                .with_min_len(planes_per_task)
                .for_each(|(o, i)| window.pool_plane(i, [h, w], o));
        }
    }
    let out = f32_tensor(out, vec![shape[0], shape[1], oh, ow]);
    (out, argmax.then_some(at))
}

/// The gradient of a max-pool's input `[batch, channels, h, w]` from its output's gradient and the
/// forward pass's `argmax`.
pub(super) fn max_unpool_planes(grad: FlexTensor, argmax: &[u32], input: [usize; 4]) -> FlexTensor {
    let grad = owned_f32(grad, "max_pool backward: grad");
    let [batch, channels, h, w] = input;
    let out_plane = grad.layout().num_elements() / (batch * channels).max(1);
    if out_plane == 0 || h * w == 0 {
        return f32_tensor(vec![0.0; batch * channels * h * w], input.to_vec());
    }
    // Each task zeroes its planes, then adds the gradients in: every plane is written.
    let len = batch * channels * h * w;
    let mut grad_in = Vec::with_capacity(len);
    let grad_out: &[f32] = grad.storage();
    grad_in.spare_capacity_mut()[..len]
        .par_chunks_mut(h * w)
        .zip(grad_out.par_chunks(out_plane))
        .zip(argmax.par_chunks(out_plane))
        .with_min_len(MIN_TASK_ELEMENTS.div_ceil(h * w))
        .for_each(|((gi, go), a)| unpool_plane(go, a, zero_fill(gi)));
    // SAFETY: the tasks zeroed every plane (the chunks cover all `len` values) before adding.
    unsafe { grad_in.set_len(len) };
    f32_tensor(grad_in, input.to_vec())
}

/// `x` and `weight` made contiguous, and the one-group convolution they describe. Panics, naming
/// the shapes, when they do not form one.
pub(super) fn conv_operands(
    x: FlexTensor,
    weight: FlexTensor,
    options: &ConvOptions<2>,
) -> (FlexTensor, FlexTensor, ConvShape) {
    operands(x, weight, options, "a one-group", |xs, ws| {
        xs[1] == ws[1] && options.groups == 1
    })
}

/// As [`conv_operands`], for a depthwise convolution: `weight` `[channels, 1, kh, kw]` and
/// `groups = channels`.
pub(super) fn depthwise_operands(
    x: FlexTensor,
    weight: FlexTensor,
    options: &ConvOptions<2>,
) -> (FlexTensor, FlexTensor, ConvShape) {
    operands(x, weight, options, "a depthwise", |xs, ws| {
        xs[1] == ws[0] && ws[1] == 1 && options.groups == xs[1]
    })
}

/// `x` and `weight` made contiguous, and the convolution they describe when `fits` their shapes
/// (`kind` names it in the panic otherwise).
fn operands(
    x: FlexTensor,
    weight: FlexTensor,
    options: &ConvOptions<2>,
    kind: &str,
    fits: impl Fn(&[usize], &[usize]) -> bool,
) -> (FlexTensor, FlexTensor, ConvShape) {
    let x = owned_f32(x, "conv2d: x");
    let weight = owned_f32(weight, "conv2d: weight");
    let (xs, ws) = (x.layout().shape().clone(), weight.layout().shape().clone());
    assert!(
        xs.len() == 4 && ws.len() == 4 && fits(&xs, &ws),
        "conv2d: input {xs:?} and weight {ws:?} ({} groups) do not form {kind} convolution",
        options.groups
    );
    let [(top, bottom), (left, right)] = options.padding;
    let padding = Pads {
        top,
        bottom,
        left,
        right,
    };
    let geometry = ConvGeometry {
        kernel: [ws[2], ws[3]],
        stride: options.stride,
        padding,
        dilation: options.dilation,
    };
    assert!(
        geometry.output_size([xs[2], xs[3]]).is_some(),
        "conv2d: a {}×{} kernel ({options:?}) does not fit the {}×{} input",
        ws[2],
        ws[3],
        xs[2],
        xs[3]
    );
    let shape = ConvShape {
        batch: xs[0],
        cin: xs[1],
        input: [xs[2], xs[3]],
        cout: ws[0],
        geometry,
    };
    (x, weight, shape)
}

/// The convolution `shape` describes, of operands [`conv_operands`] prepared, its output passed
/// through `epilogue` when given.
pub(super) fn convolve(
    x: &FlexTensor,
    weight: &FlexTensor,
    shape: &ConvShape,
    epilogue: Option<&Epilogue>,
) -> FlexTensor {
    let y = if winograd::applies(shape) {
        winograd::conv3x3(shape, x.storage(), weight.storage(), epilogue)
    } else {
        conv_forward(
            shape,
            x.storage(),
            weight.storage(),
            Grouping::forward(shape),
            epilogue,
        )
    };
    let [oh, ow] = shape
        .geometry
        .output_size(shape.input)
        .expect("checked by conv_operands");
    f32_tensor(y, vec![shape.batch, shape.cout, oh, ow])
}

/// The depthwise convolution `shape` describes, of operands [`depthwise_operands`] prepared, its
/// output passed through `epilogue` when given.
pub(super) fn convolve_depthwise(
    x: &FlexTensor,
    weight: &FlexTensor,
    shape: &ConvShape,
    epilogue: Option<&Epilogue>,
) -> FlexTensor {
    let y = depthwise::forward(shape, x.storage(), weight.storage(), epilogue);
    let [oh, ow] = shape.output();
    f32_tensor(y, vec![shape.batch, shape.cout, oh, ow])
}

/// A contiguous f32 tensor of `values` shaped `shape`.
pub(super) fn f32_tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(Shape::from(shape)),
        DType::F32,
    )
}

/// `v ← clamp(v + r, lower, upper)`, value by value.
#[multiversion(targets = "simd")]
fn add_clamp_values(values: &mut [f32], residual: &[f32], [lower, upper]: [f32; 2]) {
    for (v, r) in values.iter_mut().zip(residual) {
        *v = clamp(*v + r, lower, upper);
    }
}

/// `x` limited to `[lower, upper]`; NaN passes through (both comparisons are false).
#[inline(always)]
pub(super) fn clamp(x: f32, lower: f32, upper: f32) -> f32 {
    let x = if x < lower { lower } else { x };
    if x > upper { upper } else { x }
}

/// `t`'s values in logical order (borrowed when they already are).
pub(super) fn f32_values<'a>(t: &'a FlexTensor, what: &str) -> std::borrow::Cow<'a, [f32]> {
    assert_eq!(
        t.dtype(),
        DType::F32,
        "{what}: expected f32, got {:?}",
        t.dtype()
    );
    match t.as_slice::<f32>() {
        Some(values) => std::borrow::Cow::Borrowed(values),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().unwrap().to_vec()),
    }
}

/// `t` as a contiguous tensor whose storage is exactly its values, so it can be written in place
/// (`to_contiguous` copies only a view; `storage_mut` copies only shared storage).
pub(super) fn owned_f32(t: FlexTensor, what: &str) -> FlexTensor {
    assert_eq!(
        t.dtype(),
        DType::F32,
        "{what}: expected f32, got {:?}",
        t.dtype()
    );
    t.to_contiguous()
}
