//! The CPU kernels (`cpu_kernels`) against Burn's own operations, values and gradients: one
//! implementation for the native unit tests (`cpu_kernels.rs`) and the browser tests
//! (`tests/in_browser.rs`), so that the browser's vectors, wasm's 4-lane simd128 in Chrome's run
//! and relaxed SIMD's fused multiply-add in Firefox's (`relaxed-simd`), are held to the same
//! tolerances as the native ones. Built with the `kernel-checks` feature, which only test builds
//! turn on (the crate's dev-dependency on itself).
//!
//! The references are Burn's modules and `relu` on flex, called directly: the tower reaches our
//! kernels only through `SiameseNet`'s layer methods (`model.rs`), which these do not call. Each
//! check's shapes leave parts of vectors and tiles: sizes that are not multiples of 4, 8 or 16
//! lanes, of Winograd's 4x4 output tiles, or of the matrix kernels' tiles.
//!
//! A difference is measured relative to the largest magnitude of Burn's values: sums taken in
//! another order differ by the rounding of their terms, not of their result, which may be near
//! zero.

use std::fmt;

use burn::nn::LinearConfig;
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Gradients, Tensor};

use crate::cpu_kernels::{conv3x3, conv3x3_relu_max_pool2, dense, relu_max_pool2};

/// Every difference a check measured, shown as a table.
#[derive(Clone, Debug)]
pub struct Differences(Vec<Difference>);

/// How one quantity of one kernel on one shape differs from Burn's.
#[derive(Clone, Debug)]
struct Difference {
    kernel: &'static str,
    /// The input's dims.
    shape: String,
    /// "values", or the gradient of "weight", "bias" or "input".
    quantity: &'static str,
    /// The largest `|ours - Burn's|` (NaN when either is).
    absolute: f32,
    /// `absolute` over the largest magnitude of Burn's.
    relative: f32,
    /// The largest `relative` allowed.
    tolerance: f32,
}

impl Difference {
    fn within_tolerance(&self) -> bool {
        self.relative <= self.tolerance
    }
}

impl fmt::Display for Differences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            let verdict = if d.within_tolerance() {
                ""
            } else {
                "  TOO LARGE"
            };
            writeln!(
                f,
                "{:<22} {:<11} {:<6} absolute {:.2e} relative {:.2e} (tolerance {:.0e}){verdict}",
                d.kernel, d.shape, d.quantity, d.absolute, d.relative, d.tolerance
            )?;
        }
        Ok(())
    }
}

impl Differences {
    fn assert_within_tolerances(self) -> Self {
        assert!(
            self.0.iter().all(Difference::within_tolerance),
            "differences from Burn's operations:\n{self}"
        );
        self
    }
}

/// A tensor whose gradient is compared, by name.
struct Input<'a> {
    name: &'static str,
    gradient: Box<dyn Fn(&Gradients) -> Tensor<1> + 'a>,
}

fn input<'a, const D: usize>(name: &'static str, tensor: &'a Tensor<D>) -> Input<'a> {
    Input {
        name,
        gradient: Box::new(move |grads| {
            let grad = tensor
                .grad(grads)
                .expect("the input takes part in the output");
            grad.flatten(0, D - 1)
        }),
    }
}

/// How `ours` differs from `burns` (both computed from `inputs`, of `shape`), in its values and
/// in each input's gradient of a random weighted sum of it, so that every output has a
/// gradient of its own; `tolerance` is the largest relative difference allowed in each.
async fn compare<const D: usize>(
    kernel: &'static str,
    shape: &[usize],
    (burns, ours): (Tensor<D>, Tensor<D>),
    inputs: &[Input<'_>],
    tolerance: f32,
) -> Vec<Difference> {
    assert_eq!(ours.dims(), burns.dims(), "{kernel}");
    let weights = Tensor::<D>::random(burns.dims(), Distribution::Default, &burns.device());
    let gradients_of = |output: Tensor<D>| (output * weights.clone()).sum().backward();
    let (burns_grads, our_grads) = (gradients_of(burns.clone()), gradients_of(ours.clone()));
    let flat = |output: Tensor<D>| output.detach().flatten::<1>(0, D - 1);
    let mut compared = vec![("values", flat(burns), flat(ours))];
    for input in inputs {
        let (burns, ours) = ((input.gradient)(&burns_grads), (input.gradient)(&our_grads));
        compared.push((input.name, burns, ours));
    }
    let shape = shape.iter().map(usize::to_string).collect::<Vec<_>>();
    let shape = shape.join("x");
    let mut differences = Vec::new();
    for (quantity, burns, ours) in compared {
        let (burns, ours) = (read(burns).await, read(ours).await);
        let largest = burns.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if quantity != "values" {
            assert!(
                largest > 0.1,
                "{kernel} {shape}: Burn's {quantity} gradient is ~0"
            );
        }
        // A NaN stays: `d > NaN` is false.
        let absolute = burns.iter().zip(&ours).fold(0.0f32, |m, (b, o)| {
            let d = (b - o).abs();
            if d > m || d.is_nan() { d } else { m }
        });
        differences.push(Difference {
            kernel,
            shape: shape.clone(),
            quantity,
            absolute,
            relative: absolute / largest,
            tolerance,
        });
    }
    differences
}

/// The values of a flex tensor.
async fn read(tensor: Tensor<1>) -> Vec<f32> {
    let data = tensor.into_data_async().await.expect("flex reads");
    data.try_to_vec().expect("f32 values")
}

fn normal<const D: usize>(dims: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(dims, Distribution::Normal(0.0, 1.0), device).require_grad()
}

/// `relu_max_pool2` against Burn's `relu` and `MaxPool2d`; panics past the tolerance.
pub async fn relu_and_pooling() -> Differences {
    let device = Device::flex().autodiff();
    device.seed(3);
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    // None: both choose the same inputs and compute nothing with them.
    let tolerance = 0.0;
    let mut differences = Vec::new();
    // Odd sizes: the last row and column are left out; 5 outputs a row, as in the tower's second
    // pooling. Normal values: about a sixteenth of the windows have no positive input.
    for dims in [[3, 4, 7, 11], [2, 64, 11, 11]] {
        let x = normal(dims, &device);
        let ours = relu_max_pool2(x.clone());
        let values = read(ours.clone().detach().flatten(0, 3)).await;
        assert!(
            values.contains(&0.0),
            "some windows should have no positive input"
        );
        let burns = pool.forward(relu(x.clone()));
        let inputs = [input("input", &x)];
        let kernel = "ReLU and pooling";
        differences.extend(compare(kernel, &dims, (burns, ours), &inputs, tolerance).await);
    }
    Differences(differences).assert_within_tolerances()
}

/// `conv3x3_relu_max_pool2` against Burn's `Conv2d`, `relu` and `MaxPool2d`; panics past the
/// tolerance.
pub async fn first_layer() -> Differences {
    let device = Device::flex().autodiff();
    device.seed(5);
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    // The same products summed in another order, fused in vectors where the instruction set
    // has it: differences of up to 3.0e-7 natively and in both browsers.
    let tolerance = 1e-6;
    let mut differences = Vec::new();
    // 12x9 gives a 10x7 convolution, whose last column the pooling leaves out; 28x28 is the
    // tower's. Neither's rows of outputs fill whole vectors.
    for dims in [[4, 1, 12, 9], [4, 3, 12, 9], [3, 1, 28, 28]] {
        let conv = Conv2dConfig::new([dims[1], 32], [3, 3]).init(&device);
        let (weight, bias) = (conv.weight.val(), conv.bias.as_ref().unwrap().val());
        let x = normal(dims, &device);
        let burns = pool.forward(relu(conv.forward(x.clone())));
        let ours = conv3x3_relu_max_pool2(x.clone(), weight.clone(), bias.clone());
        let inputs = [
            input("weight", &weight),
            input("bias", &bias),
            input("input", &x),
        ];
        let kernel = "conv, ReLU and pooling";
        differences.extend(compare(kernel, &dims, (burns, ours), &inputs, tolerance).await);
    }
    Differences(differences).assert_within_tolerances()
}

/// `conv3x3` (Winograd's F(4x4, 3x3)) against Burn's `Conv2d`; panics past the tolerance.
pub async fn winograd_convolution() -> Differences {
    let device = Device::flex().autodiff();
    device.seed(7);
    // F(4x4, 3x3) sums transformed values, larger than a direct convolution's products, in
    // another order: differences of up to 4.6e-6 natively and in both browsers.
    let tolerance = 1e-5;
    let mut differences = Vec::new();
    // 13x13 as in the tower (an odd output: the last tiles are cut), and 8x10 (an even one).
    // 3, 5 and 9 images run on vectors of 4, 8 and 16 lanes where the processor has them
    // (`lanes::lanes_for`), each with lanes past the last image. The kernels are transformed a
    // vector at a time: 5 kernels of 3 channels leave a part of one.
    let shapes = [(32, 16, 13, 13), (3, 5, 8, 10)];
    for images in [3, 5, 9] {
        for (channels, kernels, height, width) in shapes {
            let conv = Conv2dConfig::new([channels, kernels], [3, 3]).init(&device);
            let (weight, bias) = (conv.weight.val(), conv.bias.as_ref().unwrap().val());
            let dims = [images, channels, height, width];
            let x = normal(dims, &device);
            let burns = conv.forward(x.clone());
            let ours = conv3x3(x.clone(), weight.clone(), bias.clone());
            let inputs = [
                input("weight", &weight),
                input("bias", &bias),
                input("input", &x),
            ];
            let kernel = "Winograd convolution";
            differences.extend(compare(kernel, &dims, (burns, ours), &inputs, tolerance).await);
        }
    }
    Differences(differences).assert_within_tolerances()
}

/// `dense` against Burn's `Linear`; panics past the tolerance.
pub async fn dense_layer() -> Differences {
    let device = Device::flex().autodiff();
    device.seed(11);
    // The same products summed in another order, over up to 1,600 terms, fused in vectors where
    // the instruction set has it: differences of up to 1.2e-6 natively and in both browsers.
    let tolerance = 3e-6;
    let mut differences = Vec::new();
    // 5 and 6 rows, 37 and 128 outputs leave parts of the matrix kernels' tiles; 1,600 inputs
    // are the tower's.
    for (rows, inputs, outputs) in [(5, 50, 37), (6, 1600, 128)] {
        let linear = LinearConfig::new(inputs, outputs).init(&device);
        let (weight, bias) = (linear.weight.val(), linear.bias.as_ref().unwrap().val());
        let x = normal([rows, inputs], &device);
        let burns = linear.forward(x.clone());
        let ours = dense(x.clone(), weight.clone(), bias.clone());
        let compared = [
            input("weight", &weight),
            input("bias", &bias),
            input("input", &x),
        ];
        let (kernel, dims) = ("dense layer", [rows, inputs]);
        differences.extend(compare(kernel, &dims, (burns, ours), &compared, tolerance).await);
    }
    Differences(differences).assert_within_tolerances()
}
