//! The Siamese network: one shared convolutional tower that maps an image to an embedding, and
//! the Euclidean distance between the embeddings of a pair.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::cpu_kernels::{conv3x3, conv3x3_relu_max_pool2, dense, relu_max_pool2};
use crate::data::ImageShape;

/// Added under the square root so that D and its gradient stay finite when two embeddings are
/// equal (d/dx sqrt(x) is infinite at 0).
pub const DISTANCE_EPSILON: f32 = 1e-7;

#[derive(Config, Debug)]
pub struct SiameseNetConfig {
    /// Input channels: 1 for grey, 3 for RGB.
    #[config(default = 1)]
    pub channels: usize,
    #[config(default = 28)]
    pub height: usize,
    #[config(default = 28)]
    pub width: usize,
    #[config(default = 128)]
    pub embedding_size: usize,
}

/// The largest image side the network takes, over four times the article's 224: the first
/// convolution's output of one 1024x1024 image is already 134 MB, a batch of them more than a
/// browser's memory, and larger sides would be decoded at another size than asked (the decoder
/// takes 32-bit sides).
pub const MAX_SIDE: usize = 1024;

/// Channels of the first convolution's output, the tower's largest activation.
pub const FIRST_CONV_CHANNELS: usize = 32;

/// The article's tower: Conv2d(32, 3x3, ReLU) -> MaxPool(2) -> Conv2d(64, 3x3, ReLU) ->
/// MaxPool(2) -> Flatten -> Dense(embedding_size, ReLU).
#[derive(Module, Debug)]
pub struct SiameseNet {
    // Seen by the benchmark, which times each layer.
    pub(crate) conv1: Conv2d,
    pub(crate) conv2: Conv2d,
    pub(crate) pool: MaxPool2d,
    pub(crate) dense: Linear,
}

impl SiameseNetConfig {
    pub fn for_shape(shape: ImageShape) -> Self {
        Self::new()
            .with_channels(shape.channels)
            .with_height(shape.height)
            .with_width(shape.width)
    }

    pub fn shape(&self) -> ImageShape {
        ImageShape::new(self.channels, self.height, self.width)
    }

    /// Height and width after the two valid 3x3 convolutions and 2x2 poolings, or an error when
    /// the input is too small for them, or has a side over [`MAX_SIDE`].
    pub fn feature_map_size(&self) -> Result<(usize, usize), String> {
        if self.height.max(self.width) > MAX_SIDE {
            return Err(format!(
                "images of {}x{} are too large for the network: use at most \
                 {MAX_SIDE}x{MAX_SIDE}",
                self.width, self.height
            ));
        }
        let after = |size: usize| -> Option<usize> {
            let pooled = size.checked_sub(2)? / 2;
            let pooled = pooled.checked_sub(2)? / 2;
            (pooled > 0).then_some(pooled)
        };
        match (after(self.height), after(self.width)) {
            (Some(h), Some(w)) => Ok((h, w)),
            _ => Err(format!(
                "images of {}x{} are too small for the network: use at least 10x10",
                self.width, self.height
            )),
        }
    }

    /// How many weights `init` makes: a model file's weights must hold them all, which refuses
    /// an absurd size before anything is allocated for it. An error when the tower cannot take
    /// the input ([`Self::feature_map_size`]), or the count overflows.
    pub fn parameters(&self) -> Result<usize, String> {
        let (h, w) = self.feature_map_size()?;
        // Each layer's weights and biases, as `init` makes them: (inputs + 1) x outputs.
        let layer =
            |inputs: Option<usize>, outputs: usize| inputs?.checked_add(1)?.checked_mul(outputs);
        [
            layer(self.channels.checked_mul(9), FIRST_CONV_CHANNELS),
            layer(Some(FIRST_CONV_CHANNELS * 9), 64),
            layer(
                64usize.checked_mul(h).and_then(|n| n.checked_mul(w)),
                self.embedding_size,
            ),
        ]
        .into_iter()
        .try_fold(0usize, |sum, layer| sum.checked_add(layer?))
        .ok_or_else(|| {
            format!(
                "a model of {}x{} images and embeddings of {} values is too large",
                self.width, self.height, self.embedding_size
            )
        })
    }

    pub fn init(&self, device: &Device) -> Result<SiameseNet, String> {
        let (h, w) = self.feature_map_size()?;
        Ok(SiameseNet {
            conv1: Conv2dConfig::new([self.channels, FIRST_CONV_CHANNELS], [3, 3]).init(device),
            conv2: Conv2dConfig::new([FIRST_CONV_CHANNELS, 64], [3, 3]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            dense: LinearConfig::new(64 * h * w, self.embedding_size).init(device),
        })
    }
}

impl SiameseNet {
    /// Embeds a batch `[n, channels, height, width]` into `[n, embedding_size]`.
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        #[cfg(test)]
        IMAGES_EMBEDDED.with(|count| count.set(count.get() + images.dims()[0]));
        let x = self.first_layer(images);
        let x = self.relu_and_pool(self.second_convolution(x));
        relu(self.dense_layer(x.flatten(1, 3)))
    }

    /// The first convolution, ReLU and pooling: on the CPU as one fused kernel
    /// (`cpu_kernels`), elsewhere as Burn's operations; both give the same values and gradients.
    /// On WebGPU over SwiftShader, Burn's one convolution kernel costs less than several.
    pub(crate) fn first_layer(&self, images: Tensor<4>) -> Tensor<4> {
        if images.device() == Device::flex() {
            conv3x3_relu_max_pool2(images, self.conv1.weight.val(), bias_of(&self.conv1))
        } else {
            self.pool.forward(relu(self.conv1.forward(images)))
        }
    }

    /// The second convolution: on the CPU by Winograd's F(4x4, 3x3) (`cpu_kernels`), elsewhere
    /// Burn's; both give the same values and gradients, up to rounding.
    pub(crate) fn second_convolution(&self, x: Tensor<4>) -> Tensor<4> {
        if x.device() == Device::flex() {
            conv3x3(x, self.conv2.weight.val(), bias_of(&self.conv2))
        } else {
            self.conv2.forward(x)
        }
    }

    /// The dense layer, before its ReLU: on the CPU on the Winograd convolution's matrix kernels
    /// (`cpu_kernels`), elsewhere Burn's; both give the same values and gradients, up to
    /// rounding.
    pub(crate) fn dense_layer(&self, x: Tensor<2>) -> Tensor<2> {
        if x.device() == Device::flex() {
            let bias = self
                .dense
                .bias
                .as_ref()
                .expect("the tower's dense layer has a bias");
            dense(x, self.dense.weight.val(), bias.val())
        } else {
            self.dense.forward(x)
        }
    }

    /// ReLU then 2x2 max pooling, the same way as the first layer's.
    pub(crate) fn relu_and_pool(&self, x: Tensor<4>) -> Tensor<4> {
        if x.device() == Device::flex() {
            relu_max_pool2(x)
        } else {
            self.pool.forward(relu(x))
        }
    }

    /// Distances of `n` pairs given as one batch of `2n` images: the first `n` are the left
    /// images, the last `n` their partners. One pass through the tower serves both sides.
    pub fn pair_distances(&self, stacked_pairs: Tensor<4>) -> Tensor<1> {
        let pairs = stacked_pairs.dims()[0] / 2;
        let embeddings = self.embed(stacked_pairs);
        let left = embeddings.clone().narrow(0, 0, pairs);
        let right = embeddings.narrow(0, pairs, pairs);
        euclidean_distance(left, right)
    }
}

/// The bias of one of the tower's convolutions, which all have one.
fn bias_of(conv: &Conv2d) -> Tensor<1> {
    let bias = conv
        .bias
        .as_ref()
        .expect("the tower's convolutions have biases");
    bias.val()
}

#[cfg(test)]
thread_local! {
    /// Images through the tower on this thread (each test has its own), for tests that count
    /// the work done.
    pub(crate) static IMAGES_EMBEDDED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Row-wise Euclidean distance `sqrt(sum((a - b)^2) + epsilon)` of two `[n, d]` batches.
pub fn euclidean_distance(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    (a - b)
        .powi_scalar(2)
        .sum_dim(1)
        .add_scalar(DISTANCE_EPSILON)
        .sqrt()
        .squeeze_dim(1)
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;

    #[test]
    fn embeds_mnist_digits_and_the_articles_rgb_images() {
        let device = Device::flex();
        for (shape, flat) in [
            (ImageShape::new(1, 28, 28), 64 * 5 * 5),
            (ImageShape::new(3, 224, 224), 64 * 54 * 54),
        ] {
            let config = SiameseNetConfig::for_shape(shape);
            assert_eq!(config.feature_map_size().map(|(h, w)| 64 * h * w), Ok(flat));
            let model = config.init(&device).unwrap();
            let images = Tensor::<4>::random(
                [4, shape.channels, shape.height, shape.width],
                Distribution::Uniform(0.0, 1.0),
                &device,
            );
            assert_eq!(model.embed(images.clone()).dims(), [4, 128]);
            assert_eq!(model.pair_distances(images).dims(), [2]);
        }
    }

    #[test]
    fn the_parameters_counted_are_those_the_model_is_made_with() {
        for shape in [ImageShape::MNIST, ImageShape::new(3, 64, 48)] {
            let config = SiameseNetConfig::for_shape(shape).with_embedding_size(16);
            let model = config.init(&Device::flex()).unwrap();
            assert_eq!(config.parameters(), Ok(model.num_params()));
        }
        let huge = SiameseNetConfig::new().with_embedding_size(usize::MAX);
        assert!(huge.parameters().unwrap_err().contains("too large"));
    }

    #[test]
    fn identical_images_are_at_distance_zero_and_different_ones_are_not() {
        let device = Device::flex();
        device.seed(1);
        let model = SiameseNetConfig::new().init(&device).unwrap();
        let a = Tensor::<4>::random([1, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device);
        let b = Tensor::<4>::random([1, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device);
        // Pairs (a, a) and (a, b) stacked as [left..., right...].
        let stacked = Tensor::cat(vec![a.clone(), a.clone(), a, b], 0);
        let d: Vec<f32> = model
            .pair_distances(stacked)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(d[0] <= DISTANCE_EPSILON.sqrt() * 1.01, "{d:?}");
        assert!(d[1] > 10.0 * DISTANCE_EPSILON.sqrt(), "{d:?}");
    }

    #[test]
    fn inputs_too_small_for_two_convolutions_and_poolings_or_too_large_are_refused() {
        let config = SiameseNetConfig::for_shape(ImageShape::new(1, 9, 28));
        assert!(
            config
                .init(&Device::flex())
                .unwrap_err()
                .contains("too small")
        );
        assert!(
            SiameseNetConfig::for_shape(ImageShape::new(1, 10, 10))
                .feature_map_size()
                .is_ok()
        );
        let size = |height, width| {
            SiameseNetConfig::for_shape(ImageShape::new(1, height, width)).feature_map_size()
        };
        assert_eq!(size(MAX_SIDE, MAX_SIDE), Ok((254, 254)));
        assert!(size(28, MAX_SIDE + 1).unwrap_err().contains("too large"));
    }

    #[test]
    fn euclidean_distance_by_hand() {
        let device = Device::flex();
        let a = Tensor::<2>::from_floats([[0.0, 0.0], [1.0, 1.0]], &device);
        let b = Tensor::<2>::from_floats([[3.0, 4.0], [1.0, 1.0]], &device);
        let d: Vec<f32> = euclidean_distance(a, b).into_data().try_to_vec().unwrap();
        assert!((d[0] - 5.0).abs() < 1e-5);
        assert!((d[1] - DISTANCE_EPSILON.sqrt()).abs() < 1e-6);
    }
}
