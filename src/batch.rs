//! Pairs -> batches: the tensors one step of the tower takes.

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::{ImageSet, ImageShape};
use crate::pairs::Pair;

/// `n` pairs as one batch of `2n` images (the left images, then their partners), so one pass
/// through the shared tower serves both sides, and the pairs' labels (1.0 dissimilar, 0.0 similar).
#[derive(Clone, Debug)]
pub struct PairBatch {
    pub images: Tensor<4>,
    pub dissimilar: Tensor<1>,
}

impl PairBatch {
    /// Pairs in the batch.
    pub fn len(&self) -> usize {
        self.dissimilar.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn new(set: &ImageSet, pairs: &[Pair], device: &Device) -> Self {
        HostBatch::new(set, pairs).to_device(device)
    }
}

/// A batch still on the host: its pixels read from the set (from disk when the set lives there)
/// and its labels, ready to become a [`PairBatch`].
#[derive(Clone)]
pub struct HostBatch {
    shape: ImageShape,
    pairs: usize,
    pixels: Vec<f32>,
    dissimilar: Vec<f32>,
}

impl HostBatch {
    pub fn new(set: &ImageSet, pairs: &[Pair]) -> Self {
        let lefts = pairs.iter().map(|pair| pair.left);
        let rights = pairs.iter().map(|pair| pair.right);
        let indices: Vec<usize> = lefts.chain(rights).collect();
        Self {
            shape: set.shape,
            pairs: pairs.len(),
            pixels: set.images(&indices),
            dissimilar: pairs
                .iter()
                .map(|p| f32::from(u8::from(p.dissimilar)))
                .collect(),
        }
    }

    /// A batch sent by another worker: `pixels` holds the left images then their partners.
    pub fn from_parts(
        shape: ImageShape,
        pixels: Vec<f32>,
        dissimilar: Vec<f32>,
    ) -> Result<Self, String> {
        let pairs = dissimilar.len();
        if pixels.len() != 2 * pairs * shape.pixels() {
            return Err(format!(
                "{} pixel values for {pairs} pairs of {} values each",
                pixels.len(),
                2 * shape.pixels()
            ));
        }
        Ok(Self {
            shape,
            pairs,
            pixels,
            dissimilar,
        })
    }

    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    pub fn pixels(&self) -> &[f32] {
        &self.pixels
    }

    /// 1.0 for a dissimilar pair, 0.0 for a similar one.
    pub fn dissimilar(&self) -> &[f32] {
        &self.dissimilar
    }

    /// Pairs in the batch.
    pub fn len(&self) -> usize {
        self.pairs
    }

    pub fn is_empty(&self) -> bool {
        self.pairs == 0
    }

    /// The batch as batches of at most `pairs` pairs each, the same pairs in the same order.
    pub fn split(self, pairs: usize) -> Vec<HostBatch> {
        if pairs >= self.pairs {
            return vec![self];
        }
        let (n, image) = (self.pairs, self.shape.pixels());
        (0..n)
            .step_by(pairs.max(1))
            .map(|start| {
                let end = (start + pairs).min(n);
                let side = |side: usize| {
                    &self.pixels[(side * n + start) * image..(side * n + end) * image]
                };
                HostBatch {
                    shape: self.shape,
                    pairs: end - start,
                    pixels: [side(0), side(1)].concat(),
                    dissimilar: self.dissimilar[start..end].to_vec(),
                }
            })
            .collect()
    }

    pub fn to_device(self, device: &Device) -> PairBatch {
        let shape = self.shape;
        let images = [2 * self.pairs, shape.channels, shape.height, shape.width];
        PairBatch {
            images: Tensor::from_data(TensorData::new(self.pixels, images), device),
            dissimilar: Tensor::from_data(TensorData::new(self.dissimilar, [self.pairs]), device),
        }
    }
}

/// The batches of `batch_size` pairs of one epoch, in order. Natively a thread reads the next
/// two ahead while the device trains on the current one, so reading a set kept on disk overlaps
/// the training; in wasm (one thread) each is read when asked for.
pub fn epoch_batches(
    set: &ImageSet,
    pairs: Vec<Pair>,
    batch_size: usize,
) -> impl Iterator<Item = HostBatch> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let (sender, receiver) = std::sync::mpsc::sync_channel(2);
        // A clone shares the pixels; the thread ends when the epoch's batches are read or when
        // the receiver is dropped (a run stopped mid-epoch).
        let set = set.clone();
        std::thread::spawn(move || {
            for chunk in pairs.chunks(batch_size) {
                if sender.send(HostBatch::new(&set, chunk)).is_err() {
                    break;
                }
            }
        });
        receiver.into_iter()
    }
    #[cfg(target_arch = "wasm32")]
    {
        let set = set.clone();
        (0..pairs.len().div_ceil(batch_size)).map(move |batch| {
            let end = ((batch + 1) * batch_size).min(pairs.len());
            HostBatch::new(&set, &pairs[batch * batch_size..end])
        })
    }
}

/// The images at `indices` as one `[n, channels, height, width]` tensor.
pub fn image_batch(set: &ImageSet, indices: &[usize], device: &Device) -> Tensor<4> {
    let shape = set.shape;
    Tensor::from_data(
        TensorData::new(
            set.images(indices),
            [indices.len(), shape.channels, shape.height, shape.width],
        ),
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::PairSampler;

    /// Images whose first value is their index (in 1/255), and an epoch of their pairs.
    fn ten_images_and_their_pairs() -> (ImageSet, Vec<Pair>) {
        let shape = ImageShape::new(1, 1, 2);
        let mut set = ImageSet::new(shape, vec!["a".into(), "b".into()]);
        for i in 0..10 {
            set.push(&[i as f32 / 255.0, 1.0], i % 2);
        }
        let pairs = PairSampler::with_seed(set.labels(), &set.class_names, 3)
            .unwrap()
            .epoch_pairs(1);
        (set, pairs)
    }

    #[test]
    fn an_epochs_batches_hold_its_pairs_in_order() {
        let (set, pairs) = ten_images_and_their_pairs();
        let batches: Vec<HostBatch> = epoch_batches(&set, pairs.clone(), 4).collect();
        assert_eq!(batches.len(), pairs.len().div_ceil(4));
        let mut read = Vec::new();
        for batch in &batches {
            let n = batch.len();
            let first = |side: usize, i: usize| (batch.pixels[(side * n + i) * 2] * 255.0).round();
            for i in 0..n {
                read.push((
                    first(0, i) as usize,
                    first(1, i) as usize,
                    batch.dissimilar[i],
                ));
            }
        }
        let expected: Vec<_> = pairs
            .iter()
            .map(|p| (p.left, p.right, f32::from(u8::from(p.dissimilar))))
            .collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn a_split_batch_holds_the_same_pairs_in_order() {
        let (set, pairs) = ten_images_and_their_pairs();
        let parts = HostBatch::new(&set, &pairs[..7]).split(3);
        assert_eq!(
            parts.iter().map(HostBatch::len).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        let expected: Vec<HostBatch> = pairs[..7]
            .chunks(3)
            .map(|chunk| HostBatch::new(&set, chunk))
            .collect();
        for (part, expected) in parts.iter().zip(&expected) {
            assert_eq!(
                (&part.pixels, &part.dissimilar),
                (&expected.pixels, &expected.dissimilar)
            );
        }
    }
}
