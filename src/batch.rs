//! Pairs -> batches: the tensors one step of the tower takes.

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::ImageSet;
use crate::pairs::Pair;

/// `n` pairs as one batch of `2n` images (the left images, then their partners), so one pass
/// through the shared tower serves both sides, and the pairs' labels (1.0 dissimilar, 0.0 similar).
pub struct PairBatch {
    pub images: Tensor<4>,
    pub dissimilar: Tensor<1>,
}

impl PairBatch {
    pub fn new(set: &ImageSet, pairs: &[Pair], device: &Device) -> Self {
        let lefts = pairs.iter().map(|pair| pair.left);
        let rights = pairs.iter().map(|pair| pair.right);
        let indices: Vec<usize> = lefts.chain(rights).collect();
        let dissimilar: Vec<f32> = pairs
            .iter()
            .map(|p| f32::from(u8::from(p.dissimilar)))
            .collect();
        Self {
            images: image_batch(set, &indices, device),
            dissimilar: Tensor::from_data(TensorData::new(dissimilar, [pairs.len()]), device),
        }
    }
}

/// The images at `indices` as one `[n, channels, height, width]` tensor.
pub fn image_batch(set: &ImageSet, indices: &[usize], device: &Device) -> Tensor<4> {
    let shape = set.shape;
    let mut pixels = Vec::with_capacity(indices.len() * shape.pixels());
    for &index in indices {
        pixels.extend_from_slice(set.image(index));
    }
    Tensor::from_data(
        TensorData::new(
            pixels,
            [indices.len(), shape.channels, shape.height, shape.width],
        ),
        device,
    )
}
