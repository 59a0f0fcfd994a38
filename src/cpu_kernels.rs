//! The tower's ReLU and 2x2 max pooling, its whole first layer (3x3 convolution, ReLU,
//! pooling), its second convolution (`winograd`) and its dense layer (`dense`), as hand-written
//! CPU kernels with their own backward passes, for the flex device.
//!
//! burn-flex pools with a generic kernel (3-D, any stride, padding and dilation) that keeps the
//! whole input alive for a backward pass scattering through 8-byte indices, and its convolution
//! for few input channels is slow; made of Burn operations, the first layer took 43.6 ms of a 68
//! ms step (128 digits, forward and backward, one thread). Here the forward pass keeps
//! one byte per pooled output, which of the four inputs won (or that none was positive), so the
//! convolution's output is never stored whole, and the backward pass works from the winners
//! alone. Max and ReLU commute, so the values and gradients are those of `max_pool2d(relu(x))`
//! (2x2 windows, stride 2, a last odd row and column left out), ties going to the first input as
//! in Burn's pooling. WebGPU keeps Burn's operations.

mod dense;
mod lanes;
mod matmul;
mod winograd;

use lanes::{Vector, VectorWork, dispatch, widest};

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Shape, Tensor, TensorData};

#[backend_extension(Flex, Autodiff)]
pub trait TowerKernels: burn::backend::Backend {
    fn relu_max_pool2(x: FloatTensor<Self>) -> FloatTensor<Self>;
    fn conv3x3_relu_max_pool2(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    fn conv3x3(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// `max_pool2d(relu(x))` on a flex tensor `[n, c, h, w]`.
pub fn relu_max_pool2(x: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as TowerKernels>::relu_max_pool2(
        x.into_dispatch(),
    ))
}

/// `max_pool2d(relu(conv2d(x, weight) + bias))` on flex tensors: `x` `[n, c, h, w]`, `weight`
/// `[k, c, 3, 3]`, `bias` `[k]`, a valid convolution with stride 1.
pub fn conv3x3_relu_max_pool2(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as TowerKernels>::conv3x3_relu_max_pool2(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// `conv2d(x, weight) + bias` on flex tensors by Winograd's F(4x4, 3x3) (`winograd`): `x`
/// `[n, c, h, w]`, `weight` `[k, c, 3, 3]`, `bias` `[k]`, a valid convolution with stride 1.
pub fn conv3x3(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as TowerKernels>::conv3x3(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// `x weight + bias` on flex tensors (`dense`): `x` `[n, inputs]`, `weight` `[inputs, outputs]`
/// (Burn's `Linear` layout), `bias` `[outputs]`.
pub fn dense(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as TowerKernels>::dense(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

impl TowerKernels for Flex {
    fn relu_max_pool2(x: FlexTensor) -> FlexTensor {
        pool(&x).0
    }

    fn conv3x3_relu_max_pool2(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        convolve_and_pool(&x, &weight, &bias).0
    }

    fn conv3x3(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        winograd::forward(&x, &weight, &bias).0
    }

    fn dense(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        dense::forward(&x, &weight, &bias)
    }
}

impl<C: CheckpointStrategy> TowerKernels for Autodiff<Flex, C> {
    fn relu_max_pool2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match PoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = x.into_primitive();
                let (output, winners) = pool(&input);
                let input_dims = dims4(input.layout().shape());
                prep.finish((input_dims, Arc::new(winners)), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(pool(&x.into_primitive()).0),
        }
    }

    fn conv3x3_relu_max_pool2(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match ConvPoolBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.into_primitive(), weight.into_primitive());
                let (output, winners) = convolve_and_pool(&x, &weight, &bias.into_primitive());
                prep.finish(
                    ConvPoolState {
                        x,
                        weight,
                        winners: Arc::new(winners),
                    },
                    output,
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(
                convolve_and_pool(
                    &x.into_primitive(),
                    &weight.into_primitive(),
                    &bias.into_primitive(),
                )
                .0,
            ),
        }
    }

    fn conv3x3(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match WinogradBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (output, transformed) = winograd::forward(
                    &x.into_primitive(),
                    &weight.into_primitive(),
                    &bias.into_primitive(),
                );
                prep.finish(transformed, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(
                winograd::forward(
                    &x.into_primitive(),
                    &weight.into_primitive(),
                    &bias.into_primitive(),
                )
                .0,
            ),
        }
    }

    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match DenseBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.into_primitive(), weight.into_primitive());
                let output = dense::forward(&x, &weight, &bias.into_primitive());
                prep.finish((x, weight), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(dense::forward(
                &x.into_primitive(),
                &weight.into_primitive(),
                &bias.into_primitive(),
            )),
        }
    }
}

/// The winner code of an output whose four inputs are all zero or negative: ReLU passes no
/// gradient back to any of them. 0-3 name the winner in reading order.
const NO_WINNER: u8 = 4;

/// Where in its input plane (rows `width` apart) pooled output `index` (rows `pooled_width`
/// apart) found its winner `code`.
fn winner_position(index: usize, code: u8, pooled_width: usize, width: usize) -> usize {
    let corner = 2 * (index / pooled_width) * width + 2 * (index % pooled_width);
    corner + usize::from(code / 2) * width + usize::from(code % 2)
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    /// The input's dims and each output's winner.
    type State = ([usize; 4], Arc<Vec<u8>>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let Some(parent) = parent else { return };
        let ([n, c, h, w], winners) = ops.state;
        let (out_h, out_w) = (h / 2, w / 2);
        let grad = f32_values(&grad);
        let mut input_grad = vec![0.0f32; n * c * h * w];
        for_each_chunk(&mut input_grad, h * w, |plane, input_grad| {
            let outputs = plane * out_h * out_w..(plane + 1) * out_h * out_w;
            let (grad, codes) = (&grad[outputs.clone()], &winners[outputs]);
            for (index, (&g, &code)) in grad.iter().zip(codes).enumerate() {
                if code != NO_WINNER {
                    input_grad[winner_position(index, code, out_w, w)] = g;
                }
            }
        });
        grads.register::<Flex>(parent.id, flex_tensor(input_grad, [n, c, h, w]));
    }
}

#[derive(Clone, Debug)]
struct ConvPoolState {
    x: FlexTensor,
    weight: FlexTensor,
    winners: Arc<Vec<u8>>,
}

#[derive(Debug)]
struct ConvPoolBackward;

impl Backward<Flex, 3> for ConvPoolBackward {
    type State = ConvPoolState;

    /// Only the winners have a gradient: for each, every tap of its window gets the gradient
    /// times the input under it, the input under each tap the gradient times the tap's weight.
    fn backward(self, ops: Ops<ConvPoolState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node, bias_node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let ConvPoolState { x, weight, winners } = ops.state;
        let sizes = ConvSizes::of(&x, &weight, FIRST_LAYER_MIN_SIDE);
        let ConvSizes {
            n,
            channels,
            kernels,
            ..
        } = sizes;
        let (grad, inputs, weights) = (f32_values(&grad), f32_values(&x), f32_values(&weight));
        let pooled = sizes.pooled_len();
        let tap_offsets = sizes.tap_offsets();

        // The gradient at each winner, its position in the convolution's output, per kernel.
        let winners_of = |image: usize, kernel: usize| {
            let outputs =
                (image * kernels + kernel) * pooled..(image * kernels + kernel + 1) * pooled;
            let codes = &winners[outputs.clone()];
            grad[outputs]
                .iter()
                .zip(codes)
                .enumerate()
                .filter(|&(_, (_, &code))| code != NO_WINNER)
                .map(move |(index, (&g, &code))| (sizes.winner_position(index, code), g))
        };

        if weight_node.is_some() || bias_node.is_some() {
            // [weights..., biases...], summed over the images.
            let taps = channels * 9;
            let sums = sum_over_images(n, kernels * (taps + 1), |image, sums| {
                let image_inputs = sizes.image(&inputs, image);
                let (weight_sums, bias_sums) = sums.split_at_mut(kernels * taps);
                for kernel in 0..kernels {
                    let kernel_sums = &mut weight_sums[kernel * taps..(kernel + 1) * taps];
                    for (position, g) in winners_of(image, kernel) {
                        bias_sums[kernel] += g;
                        for (sum, offset) in kernel_sums.iter_mut().zip(&tap_offsets) {
                            *sum += g * image_inputs[position + offset];
                        }
                    }
                }
            });
            let (weight_grad, bias_grad) = sums.split_at(kernels * taps);
            if let Some(node) = weight_node {
                let dims = [kernels, channels, 3, 3];
                grads.register::<Flex>(node.id, flex_tensor(weight_grad.to_vec(), dims));
            }
            if let Some(node) = bias_node {
                grads.register::<Flex>(node.id, flex_tensor(bias_grad.to_vec(), [kernels]));
            }
        }
        if let Some(node) = x_node {
            let mut input_grad = vec![0.0f32; inputs.len()];
            for_each_chunk(&mut input_grad, sizes.image_len(), |image, input_grad| {
                for kernel in 0..kernels {
                    let taps = &weights[kernel * channels * 9..(kernel + 1) * channels * 9];
                    for (position, g) in winners_of(image, kernel) {
                        for (offset, &tap) in tap_offsets.iter().zip(taps) {
                            input_grad[position + offset] += g * tap;
                        }
                    }
                }
            });
            grads.register::<Flex>(node.id, flex_tensor(input_grad, dims4(x.layout().shape())));
        }
    }
}

#[derive(Debug)]
struct DenseBackward;

impl Backward<Flex, 3> for DenseBackward {
    /// The input and the weight.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node, bias_node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, weight) = ops.state;
        let wanted = (x_node.is_some(), weight_node.is_some(), bias_node.is_some());
        let (x_grad, weight_grad, bias_grad) = dense::backward(&grad, &x, &weight, wanted);
        for (node, grad) in [
            (x_node, x_grad),
            (weight_node, weight_grad),
            (bias_node, bias_grad),
        ] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct WinogradBackward;

impl Backward<Flex, 3> for WinogradBackward {
    /// The sizes, and the transformed kernels (`U`) and inputs (`V`).
    type State = (ConvSizes, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node, bias_node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (sizes, u, v) = ops.state;
        if let Some(node) = bias_node {
            grads.register::<Flex>(node.id, winograd::bias_grad(&grad, &sizes));
        }
        let wanted = (weight_node.is_some(), x_node.is_some());
        let (weight_grad, input_grad) = winograd::backward(&grad, (&u, &v), &sizes, wanted);
        if let (Some(node), Some(weight_grad)) = (weight_node, weight_grad) {
            grads.register::<Flex>(node.id, weight_grad);
        }
        if let (Some(node), Some(input_grad)) = (x_node, input_grad) {
            grads.register::<Flex>(node.id, input_grad);
        }
    }
}

/// Sizes of a 3x3 valid convolution: `n` images of `channels` planes of `height x width`,
/// `kernels` outputs. The first layer's methods follow (where things are in the flattened
/// planes, pooled), Winograd's tiling in `winograd`. The first layer lays a convolution's output
/// out with the input's row length (`width`), so that each tap's inputs are one contiguous run.
#[derive(Clone, Copy, Debug)]
struct ConvSizes {
    n: usize,
    channels: usize,
    kernels: usize,
    height: usize,
    width: usize,
}

impl ConvSizes {
    /// The sizes of `x` and `weight`, which must be 3x3 kernels over its channels, on planes of
    /// at least `min_side` a side.
    fn of(x: &FlexTensor, weight: &FlexTensor, min_side: usize) -> Self {
        let [n, channels, height, width] = dims4(x.layout().shape());
        let [kernels, weight_channels, kh, kw] = dims4(weight.layout().shape());
        assert!(
            (weight_channels, kh, kw) == (channels, 3, 3)
                && height >= min_side
                && width >= min_side,
            "a 3x3 convolution of {channels} channels on {height}x{width} (at least {min_side} a side)"
        );
        Self {
            n,
            channels,
            kernels,
            height,
            width,
        }
    }

    fn pooled_dims(&self) -> (usize, usize) {
        ((self.height - 2) / 2, (self.width - 2) / 2)
    }

    fn pooled_len(&self) -> usize {
        let (h, w) = self.pooled_dims();
        h * w
    }

    fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    fn image<'a>(&self, inputs: &'a [f32], image: usize) -> &'a [f32] {
        &inputs[image * self.image_len()..(image + 1) * self.image_len()]
    }

    /// The convolution's outputs that the pooling reads, in rows of `width`.
    fn output_run(&self) -> usize {
        let (h, w) = self.pooled_dims();
        (2 * h - 1) * self.width + 2 * w
    }

    fn plane<'a>(&self, image: &'a [f32], channel: usize) -> &'a [f32] {
        let len = self.height * self.width;
        &image[channel * len..(channel + 1) * len]
    }

    /// Offsets in an image of the inputs under each tap, (channel, ky, kx) in the weights' order.
    fn tap_offsets(&self) -> Vec<usize> {
        let (plane, width) = (self.height * self.width, self.width);
        (0..self.channels)
            .flat_map(|c| (0..9).map(move |tap| c * plane + (tap / 3) * width + tap % 3))
            .collect()
    }

    /// The position in the convolution's output of pooled output `index`'s winner.
    fn winner_position(&self, index: usize, code: u8) -> usize {
        winner_position(index, code, self.pooled_dims().1, self.width)
    }
}

/// The first layer's convolution needs 2x2 outputs to pool.
const FIRST_LAYER_MIN_SIDE: usize = 4;

fn convolve_and_pool(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
) -> (FlexTensor, Vec<u8>) {
    let sizes = ConvSizes::of(x, weight, FIRST_LAYER_MIN_SIDE);
    let (inputs, weights, biases) = (f32_values(x), f32_values(weight), f32_values(bias));
    let ConvSizes { n, kernels, .. } = sizes;
    let (pooled_h, pooled_w) = sizes.pooled_dims();
    let pooled = sizes.pooled_len();
    let mut output = vec![0.0f32; n * kernels * pooled];
    let mut winners = vec![0u8; output.len()];
    let lanes = widest();
    for_each_chunk_pair(
        &mut output,
        &mut winners,
        kernels * pooled,
        |image, output, winners| {
            /// One image's convolution, ReLU and pooling, kernel by kernel.
            struct ConvolveImage<'a> {
                sizes: ConvSizes,
                image_inputs: &'a [f32],
                weights: &'a [f32],
                biases: &'a [f32],
                output: &'a mut [f32],
                winners: &'a mut [u8],
            }
            impl VectorWork for ConvolveImage<'_> {
                type Output = ();
                #[inline(always)]
                fn run<V: Vector>(self) {
                    let Self {
                        sizes,
                        image_inputs,
                        weights,
                        biases,
                        output,
                        winners,
                    } = self;
                    let ConvSizes {
                        channels,
                        kernels,
                        width,
                        ..
                    } = sizes;
                    let pooled = sizes.pooled_len();
                    // One kernel's output, in rows of `width` (the last two values of a row
                    // are unused).
                    let mut convolved = vec![0.0f32; sizes.output_run()];
                    for kernel in 0..kernels {
                        convolved.fill(biases[kernel]);
                        for c in 0..channels {
                            let plane = sizes.plane(image_inputs, c);
                            let taps = &weights
                                [(kernel * channels + c) * 9..(kernel * channels + c + 1) * 9];
                            add_taps::<V>(&mut convolved, plane, taps.try_into().unwrap(), width);
                        }
                        let kernel_outputs = kernel * pooled..(kernel + 1) * pooled;
                        pool_plane(
                            &convolved,
                            width,
                            sizes.pooled_dims(),
                            &mut output[kernel_outputs.clone()],
                            &mut winners[kernel_outputs],
                        );
                    }
                }
            }
            let image_inputs = sizes.image(&inputs, image);
            let work = ConvolveImage {
                sizes,
                image_inputs,
                weights: &weights,
                biases: &biases,
                output,
                winners,
            };
            dispatch(lanes, work);
        },
    );
    (
        flex_tensor(output, [n, kernels, pooled_h, pooled_w]),
        winners,
    )
}

/// The inputs under tap `ky*3+kx` of each of `run` outputs: `plane[i + ky*width + kx]`.
fn tap_runs(plane: &[f32], width: usize, run: usize) -> [&[f32]; 9] {
    std::array::from_fn(|tap| &plane[(tap / 3) * width + tap % 3..][..run])
}

/// `out[i] += sum of taps[t] * (the input under tap t of output i)`, the nine runs read in one
/// pass over the output, a vector of outputs at a time.
#[inline(always)]
fn add_taps<V: Vector>(out: &mut [f32], plane: &[f32], taps: &[f32; 9], width: usize) {
    let runs = tap_runs(plane, width, out.len());
    let mut tap_vectors = [V::zero(); 9];
    for (vector, &tap) in tap_vectors.iter_mut().zip(taps) {
        *vector = V::splat(tap);
    }
    let vectors = out.len() / V::LANES * V::LANES;
    for i in (0..vectors).step_by(V::LANES) {
        let mut sum = V::read(&out[i..]);
        for (run, &tap) in runs.iter().zip(&tap_vectors) {
            sum = sum.add_product(tap, V::read(&run[i..]));
        }
        sum.write(&mut out[i..]);
    }
    for i in vectors..out.len() {
        out[i] += runs
            .iter()
            .zip(taps)
            .map(|(run, tap)| tap * run[i])
            .sum::<f32>();
    }
}

fn pool(input: &FlexTensor) -> (FlexTensor, Vec<u8>) {
    let [n, c, h, w] = dims4(input.layout().shape());
    let (out_h, out_w) = (h / 2, w / 2);
    let values = f32_values(input);
    let mut output = vec![0.0f32; n * c * out_h * out_w];
    let mut winners = vec![0u8; output.len()];
    for_each_chunk_pair(
        &mut output,
        &mut winners,
        out_h * out_w,
        |plane, output, winners| {
            let input = &values[plane * h * w..(plane + 1) * h * w];
            pool_plane(input, w, (out_h, out_w), output, winners);
        },
    );
    (flex_tensor(output, [n, c, out_h, out_w]), winners)
}

/// ReLU and 2x2 max pooling of one plane whose rows are `width` apart.
fn pool_plane(
    input: &[f32],
    width: usize,
    (out_h, out_w): (usize, usize),
    output: &mut [f32],
    winners: &mut [u8],
) {
    let mut nan_seen = false;
    for y in 0..out_h {
        let top = &input[2 * y * width..][..2 * out_w];
        let bottom = &input[(2 * y + 1) * width..][..2 * out_w];
        let outputs = y * out_w..(y + 1) * out_w;
        let (output, winners) = (&mut output[outputs.clone()], &mut winners[outputs]);
        // Without branches, so that the compiler can take several windows at once.
        for x in 0..out_w {
            let window = [top[2 * x], top[2 * x + 1], bottom[2 * x], bottom[2 * x + 1]];
            let (best, code) = pool_window(window);
            nan_seen |= window
                .iter()
                .fold(false, |seen, value| seen | value.is_nan());
            output[x] = best;
            winners[x] = code;
        }
    }
    if nan_seen {
        // A diverging run: the NaN goes on, so that it shows in the loss.
        for y in 0..out_h {
            let (top, bottom) = (&input[2 * y * width..], &input[(2 * y + 1) * width..]);
            for x in 0..out_w {
                let window = [top[2 * x], top[2 * x + 1], bottom[2 * x], bottom[2 * x + 1]];
                if let Some(first) = window.iter().position(|value| value.is_nan()) {
                    output[y * out_w + x] = f32::NAN;
                    winners[y * out_w + x] = first as u8;
                }
            }
        }
    }
}

/// The largest of a window after ReLU and which input it is (the first of equals), or 0 and
/// `NO_WINNER` (NaNs aside: `pool_plane` sees to them). Written without branches on the values,
/// which are unpredictable.
#[inline(always)]
fn pool_window([a, b, c, d]: [f32; 4]) -> (f32, u8) {
    let (mut best, mut code) = (a, 0u8);
    for (value, value_code) in [(b, 1u8), (c, 2), (d, 3)] {
        let wins = value > best;
        best = if wins { value } else { best };
        code = if wins { value_code } else { code };
    }
    let positive = best > 0.0;
    (
        if positive { best } else { 0.0 },
        if positive { code } else { NO_WINNER },
    )
}

fn dims4(shape: &Shape) -> [usize; 4] {
    let dims = shape.dims::<4>();
    assert!(
        dims[2] >= 2 && dims[3] >= 2,
        "2x2 pooling needs at least 2x2 inputs, got {dims:?}"
    );
    dims
}

fn f32_values(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    assert_eq!(tensor.dtype(), DType::F32, "the CPU kernels are for f32");
    match tensor.as_slice::<f32>() {
        Some(values) => std::borrow::Cow::Borrowed(values),
        None => std::borrow::Cow::Owned(tensor.to_contiguous().as_slice::<f32>().unwrap().to_vec()),
    }
}

fn flex_tensor<const D: usize>(values: Vec<f32>, dims: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

// Natively the loops below run on every core (the command line's `--threads` sizes rayon's
// pool); the browser's wasm has one thread.

/// `work(index, chunk)` for each `len`-long chunk of `values`.
fn for_each_chunk(values: &mut [f32], len: usize, work: impl Fn(usize, &mut [f32]) + Send + Sync) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        values
            .par_chunks_mut(len)
            .enumerate()
            .for_each(|(index, chunk)| work(index, chunk));
    }
    #[cfg(target_arch = "wasm32")]
    values
        .chunks_mut(len)
        .enumerate()
        .for_each(|(index, chunk)| work(index, chunk));
}

/// `work(index, values' chunk, codes' chunk)` for each `len`-long chunk of both.
fn for_each_chunk_pair(
    values: &mut [f32],
    codes: &mut [u8],
    len: usize,
    work: impl Fn(usize, &mut [f32], &mut [u8]) + Send + Sync,
) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        values
            .par_chunks_mut(len)
            .zip(codes.par_chunks_mut(len))
            .enumerate()
            .for_each(|(index, (values, codes))| work(index, values, codes));
    }
    #[cfg(target_arch = "wasm32")]
    values
        .chunks_mut(len)
        .zip(codes.chunks_mut(len))
        .enumerate()
        .for_each(|(index, (values, codes))| work(index, values, codes));
}

/// The sum over `0..n` of what `work(index, sums)` adds into `len` zeros, added in the order of
/// the indices whatever the threads, so that a seeded run gives the same model every time.
fn sum_over_images(
    n: usize,
    len: usize,
    work: impl Fn(usize, &mut [f32]) + Send + Sync,
) -> Vec<f32> {
    let mut each = vec![0.0f32; n * len];
    for_each_chunk(&mut each, len, work);
    let mut sums = vec![0.0f32; len];
    for one in each.chunks_exact(len) {
        sums.iter_mut()
            .zip(one)
            .for_each(|(sum, value)| *sum += value);
    }
    sums
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::kernel_checks;

    // The comparisons with Burn's operations are those the browser tests run
    // (`kernel_checks`); `cargo test -- --nocapture` prints the differences they measured.

    #[test]
    fn pooling_equals_burns_relu_and_max_pooling_and_their_gradients() {
        println!("{}", pollster::block_on(kernel_checks::relu_and_pooling()));
    }

    #[test]
    fn the_first_layer_equals_burns_convolution_relu_and_pooling_and_their_gradients() {
        println!("{}", pollster::block_on(kernel_checks::first_layer()));
    }

    #[test]
    fn the_winograd_convolution_equals_burns_and_its_gradients() {
        println!(
            "{}",
            pollster::block_on(kernel_checks::winograd_convolution())
        );
    }

    #[test]
    fn the_dense_layer_equals_burns_and_its_gradients() {
        println!("{}", pollster::block_on(kernel_checks::dense_layer()));
    }

    #[test]
    fn a_nan_input_gives_a_nan_output() {
        let device = Device::flex();
        let x = Tensor::<4>::from_floats([[[[1.0, f32::NAN], [2.0, -1.0]]]], &device);
        let y: Vec<f32> = relu_max_pool2(x).into_data().try_to_vec().unwrap();
        assert!(y[0].is_nan(), "{y:?}");
    }
}
