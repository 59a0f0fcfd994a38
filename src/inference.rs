//! The trained tower in use, apart from the training loop: embeddings of image sets, pair
//! distances from them (each image through the tower once, however many pairs it is in), pair
//! accuracy, and what the embeddings are good for (k-NN and one-shot classification).

use burn::module::Module;
use burn::tensor::Device;

use crate::batch::image_batch;
use crate::data::ImageSet;
use crate::embeddings::{Embeddings, knn_accuracy, one_shot_accuracy};
use crate::evaluation::accuracy_at;
use crate::model::SiameseNet;
use crate::pairs::Pair;
use crate::training::{TrainError, backend_error};

/// Images per forward pass when no gradient is kept: larger than training batches for small
/// images, and for large ones as many as keep the first convolution's output (the largest
/// activation) within [`INFERENCE_ACTIVATION_VALUES`]: 41 images of 224x224, not 256 (1.6 GB).
const INFERENCE_BATCH: usize = 256;
const INFERENCE_ACTIVATION_VALUES: usize = 1 << 26;

fn inference_batch(model: &SiameseNet, set: &ImageSet) -> usize {
    // The first convolution's weight is [out channels, in channels, 3, 3].
    let first_activation = model.conv1.weight.dims()[0] * set.shape.height * set.shape.width;
    (INFERENCE_ACTIVATION_VALUES / first_activation).clamp(1, INFERENCE_BATCH)
}

/// The embedding of every image of `set`, without autodiff.
pub async fn embed_images(
    model: &SiameseNet,
    set: &ImageSet,
    device: &Device,
) -> Result<Embeddings, TrainError> {
    let model = model.valid();
    let device = device.clone().without_autodiff();
    let mut values = Vec::new();
    // The dense layer's weight is [inputs, embedding size]: known even for an empty set.
    let dim = model.dense.weight.dims()[1];
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks(inference_batch(&model, set)) {
        let embedded = model.embed(image_batch(set, chunk, &device));
        let data = embedded.into_data_async().await.map_err(backend_error)?;
        values.extend(data.iter::<f32>());
    }
    Ok(Embeddings::new(dim, values, set.labels().to_vec()))
}

/// Distances of `pairs` of `set`: every image the pairs use is embedded once, and each pair's D
/// comes from the two embeddings (in balanced pairs an image is in about four, so this is ~4x
/// fewer passes than running both images of every pair through the tower).
pub async fn pair_distances(
    model: &SiameseNet,
    set: &ImageSet,
    pairs: &[Pair],
    device: &Device,
) -> Result<Vec<f32>, TrainError> {
    let mut used: Vec<usize> = pairs.iter().flat_map(|p| [p.left, p.right]).collect();
    used.sort_unstable();
    used.dedup();
    let embeddings = embed_images(model, &set.subset(&used), device).await?;
    let row = |index: usize| used.binary_search(&index).expect("an image of the pairs");
    let pairs: Vec<Pair> = pairs
        .iter()
        .map(|pair| Pair {
            left: row(pair.left),
            right: row(pair.right),
            dissimilar: pair.dissimilar,
        })
        .collect();
    Ok(embeddings.pair_distances(&pairs))
}

pub fn dissimilar_flags(pairs: &[Pair]) -> Vec<bool> {
    pairs.iter().map(|p| p.dissimilar).collect()
}

/// Neighbours that vote in k-NN classification.
pub const KNN_K: usize = 5;

/// How well the embeddings serve the downstream task: classifying test images.
pub struct Classification {
    /// Test images whose `KNN_K` nearest reference images mostly share their class.
    pub knn_acc: f64,
    pub one_shot_acc: f64,
    pub one_shot_ways: usize,
}

/// Classifies the `queries` (test embeddings) by the labelled `reference` embeddings: k-NN, and
/// N-way one-shot with one random reference image per class.
pub fn classify(reference: &Embeddings, queries: &Embeddings, seed: u64) -> Classification {
    let (one_shot_acc, one_shot_ways) = one_shot_accuracy(reference, queries, seed);
    Classification {
        knn_acc: knn_accuracy(reference, queries, KNN_K),
        one_shot_acc,
        one_shot_ways,
    }
}

/// Pair accuracy of known embeddings at `threshold`.
pub fn pair_accuracy(embeddings: &Embeddings, pairs: &[Pair], threshold: f32) -> f64 {
    accuracy_at(
        &embeddings.pair_distances(pairs),
        &dissimilar_flags(pairs),
        threshold,
    )
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::batch::PairBatch;
    use crate::data::ImageShape;
    use crate::model::{IMAGES_EMBEDDED, SiameseNetConfig};

    #[test]
    fn pair_distances_embed_each_image_of_the_pairs_once_and_equal_the_towers() {
        let device = Device::flex();
        device.seed(9);
        let model = SiameseNetConfig::new().init(&device).unwrap();
        let shape = ImageShape::MNIST;
        let mut set = ImageSet::new(shape, vec!["a".into(), "b".into()]);
        let noise: Vec<f32> = burn::tensor::Tensor::<1>::random(
            [6 * shape.pixels()],
            Distribution::Uniform(0.0, 1.0),
            &device,
        )
        .into_data()
        .try_to_vec()
        .unwrap();
        for (index, image) in noise.chunks(shape.pixels()).enumerate() {
            set.push(image, index % 2);
        }
        let pair = |left, right| Pair {
            left,
            right,
            dissimilar: left % 2 != right % 2,
        };
        // Six pairs over four of the six images: image 0 is in four of them, 4 and 5 in none.
        let pairs = [
            pair(0, 1),
            pair(0, 2),
            pair(1, 2),
            pair(3, 0),
            pair(2, 3),
            pair(0, 3),
        ];
        IMAGES_EMBEDDED.set(0);
        let distances = pollster::block_on(pair_distances(&model, &set, &pairs, &device)).unwrap();
        assert_eq!(
            IMAGES_EMBEDDED.get(),
            4,
            "both images of every pair would be 12"
        );

        // The same distances as both images of each pair through the tower, as training does.
        let batch = PairBatch::new(&set, &pairs, &device);
        let tower: Vec<f32> = model
            .pair_distances(batch.images)
            .into_data()
            .try_to_vec()
            .unwrap();
        for (once, both) in distances.iter().zip(&tower) {
            assert!((once - both).abs() < 1e-5, "{once} vs {both}");
        }
        assert!(tower.iter().all(|&d| d > 0.01), "{tower:?}");
    }

    #[test]
    fn large_images_are_embedded_a_few_at_a_time() {
        let device = Device::flex();
        let batch_of = |shape: ImageShape| {
            let model = SiameseNetConfig::for_shape(shape).init(&device).unwrap();
            inference_batch(&model, &ImageSet::new(shape, Vec::new()))
        };
        assert_eq!(batch_of(ImageShape::MNIST), 256);
        // 41 images of 224x224: 41 x 32 x 224 x 224 values, under 2^26 (256 MB of f32).
        assert_eq!(batch_of(ImageShape::new(3, 224, 224)), 41);
    }
}
