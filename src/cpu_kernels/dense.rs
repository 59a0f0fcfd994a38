//! The dense layer, `x W + b`, on the CPU with its backward pass, on the Winograd convolution's
//! matrix kernels (`matmul`): in the browser they multiply and add in one relaxed-SIMD
//! instruction, where Burn's matrix product (the `gemm` crate) has no fused multiply-add in wasm.

use burn::backend::flex::FlexTensor;

use super::lanes::{Vector, VectorWork, dispatch, widest};
use super::matmul::{matmul, matmul_by_transpose};
use super::{f32_values, flex_tensor};

/// The sizes of `x` `[n, inputs]` by `weight` `[inputs, outputs]`.
fn sizes(x: &FlexTensor, weight: &FlexTensor) -> (usize, usize, usize) {
    let [n, inputs] = x.layout().shape().dims::<2>();
    let [weight_inputs, outputs] = weight.layout().shape().dims::<2>();
    assert_eq!(
        inputs, weight_inputs,
        "a dense layer of {weight_inputs} inputs on {inputs}"
    );
    (n, inputs, outputs)
}

/// `x weight + bias`: `x` `[n, inputs]`, `weight` `[inputs, outputs]`, `bias` `[outputs]`.
pub(super) fn forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let (n, inputs, outputs) = sizes(x, weight);
    struct Forward<'a>(&'a [f32], &'a [f32], &'a mut [f32], (usize, usize, usize));
    impl VectorWork for Forward<'_> {
        type Output = ();
        #[inline(always)]
        fn run<V: Vector>(self) {
            let Forward(x, weight, y, (n, inputs, outputs)) = self;
            matmul::<V>(
                x,
                (inputs, 1),
                weight,
                y,
                (n, inputs, outputs),
                (outputs, outputs),
            );
        }
    }
    let mut y = vec![0.0f32; n * outputs];
    let (x_values, weights) = (f32_values(x), f32_values(weight));
    let work = Forward(&x_values, &weights, &mut y, (n, inputs, outputs));
    dispatch(widest(), work);
    let biases = f32_values(bias);
    for row in y.chunks_exact_mut(outputs) {
        row.iter_mut().zip(biases.iter()).for_each(|(y, b)| *y += b);
    }
    flex_tensor(y, [n, outputs])
}

/// The gradients of `x` (`grad Wᵀ`), the weight (`xᵀ grad`) and the bias (`grad` summed over
/// the rows), those `wanted`, from the output's `grad` `[n, outputs]`.
pub(super) fn backward(
    grad: &FlexTensor,
    x: &FlexTensor,
    weight: &FlexTensor,
    (x_wanted, weight_wanted, bias_wanted): (bool, bool, bool),
) -> (Option<FlexTensor>, Option<FlexTensor>, Option<FlexTensor>) {
    let (n, inputs, outputs) = sizes(x, weight);
    let (grads, x_values, weights) = (f32_values(grad), f32_values(x), f32_values(weight));
    struct Backward<'a> {
        grads: &'a [f32],
        x: &'a [f32],
        weights: &'a [f32],
        sizes: (usize, usize, usize),
        x_grad: Option<&'a mut [f32]>,
        weight_grad: Option<&'a mut [f32]>,
    }
    impl VectorWork for Backward<'_> {
        type Output = ();
        #[inline(always)]
        fn run<V: Vector>(self) {
            let (n, inputs, outputs) = self.sizes;
            if let Some(x_grad) = self.x_grad {
                let weights = (self.weights, outputs);
                matmul_by_transpose::<V>(self.grads, weights, x_grad, (n, outputs, inputs));
            }
            if let Some(weight_grad) = self.weight_grad {
                let sizes = (inputs, n, outputs);
                matmul::<V>(
                    self.x,
                    (1, inputs),
                    self.grads,
                    weight_grad,
                    sizes,
                    (outputs, outputs),
                );
            }
        }
    }
    let mut x_grad = vec![0.0f32; if x_wanted { n * inputs } else { 0 }];
    let mut weight_grad = vec![0.0f32; if weight_wanted { inputs * outputs } else { 0 }];
    let work = Backward {
        grads: &grads,
        x: &x_values,
        weights: &weights,
        sizes: (n, inputs, outputs),
        x_grad: x_wanted.then_some(&mut x_grad[..]),
        weight_grad: weight_wanted.then_some(&mut weight_grad[..]),
    };
    dispatch(widest(), work);
    let bias_grad = bias_wanted.then(|| {
        let mut sums = vec![0.0f32; outputs];
        for row in grads.chunks_exact(outputs) {
            sums.iter_mut().zip(row).for_each(|(sum, g)| *sum += g);
        }
        flex_tensor(sums, [outputs])
    });
    (
        x_wanted.then(|| flex_tensor(x_grad, [n, inputs])),
        weight_wanted.then(|| flex_tensor(weight_grad, [inputs, outputs])),
        bias_grad,
    )
}
