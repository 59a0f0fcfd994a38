//! The training loop, written by hand (burn-train does not run in wasm) and async so that it runs
//! in a browser: every tensor read is `*_async`, and the observer's callbacks are awaited, which
//! is where a browser worker yields to receive a Stop.

use std::future::Future;

use burn::config::Config;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::data::ImageSet;
use crate::embeddings::{Embeddings, knn_accuracy, one_shot_accuracy};
use crate::evaluation::{ARTICLE_THRESHOLD, Evaluation, accuracy_at};
use crate::loss::ContrastiveLoss;
use crate::model::{DISTANCE_EPSILON, SiameseNet, SiameseNetConfig};
use crate::pairs::{Pair, PairError, PairSampler};

/// Every knob of a run, with the article's defaults.
#[derive(Config, Debug)]
pub struct TrainConfig {
    #[config(default = 10)]
    pub epochs: usize,
    /// Pairs per batch (each pair is two images through the tower).
    #[config(default = 64)]
    pub batch_size: usize,
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    #[config(default = 1.0)]
    pub margin: f32,
    /// Fraction of the training images held out to validate each epoch and pick the threshold.
    #[config(default = 0.2)]
    pub validation_split: f64,
    #[config(default = 42)]
    pub seed: u64,
}

impl TrainConfig {
    /// Refuses settings that cannot train, before any work starts.
    pub fn validate(&self) -> Result<(), TrainError> {
        let problem = if self.epochs == 0 {
            Some("epochs must be at least 1".to_string())
        } else if self.batch_size == 0 {
            Some("batch size must be at least 1".to_string())
        } else if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            Some(format!(
                "learning rate must be positive, not {}",
                self.learning_rate
            ))
        } else if !(self.margin.is_finite() && self.margin > 0.0) {
            Some(format!("margin must be positive, not {}", self.margin))
        } else if !(0.0..1.0).contains(&self.validation_split) {
            Some(format!(
                "validation split must be in 0..1, not {}",
                self.validation_split
            ))
        } else {
            None
        };
        problem.map_or(Ok(()), |message| Err(TrainError::Settings(message)))
    }
}

#[derive(Debug)]
pub enum TrainError {
    Settings(String),
    Data(PairError),
    /// The loss became NaN or infinite, or exploded past [`exploded_loss`]: the learning rate
    /// is too high for this data.
    Diverged {
        epoch: usize,
        step: usize,
        loss: f32,
    },
    /// Every validation pair is at distance ~0: the tower maps all images to one embedding
    /// (its ReLUs went silent), also a sign of too high a learning rate.
    Collapsed {
        epoch: usize,
    },
    Backend(String),
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::Settings(message) => write!(f, "invalid settings: {message}"),
            TrainError::Data(err) => write!(f, "cannot train on this set: {err}"),
            TrainError::Diverged { epoch, step, loss } => {
                if loss.is_finite() {
                    write!(f, "loss exploded to {loss:.3e}")?;
                } else {
                    write!(f, "loss became {loss}")?;
                }
                write!(
                    f,
                    " at epoch {epoch}, step {step}: training stopped; lower the learning rate"
                )
            }
            TrainError::Collapsed { epoch } => write!(
                f,
                "after epoch {epoch} every image maps to the same embedding (all distances are \
                 0), so the model cannot tell images apart: training stopped; lower the \
                 learning rate"
            ),
            TrainError::Backend(message) => write!(f, "backend error: {message}"),
        }
    }
}

impl std::error::Error for TrainError {}

impl From<PairError> for TrainError {
    fn from(err: PairError) -> Self {
        TrainError::Data(err)
    }
}

pub(crate) fn backend_error(err: impl std::fmt::Debug) -> TrainError {
    TrainError::Backend(format!("{err:?}"))
}

/// Reported after every batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchProgress {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    /// 1-based within the epoch.
    pub step: usize,
    pub steps_per_epoch: usize,
    pub loss: f32,
    /// Training pairs per second since the run started.
    pub pairs_per_s: f64,
    pub elapsed_s: f64,
}

/// Reported after every epoch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochSummary {
    pub epoch: usize,
    pub train_loss: f32,
    /// None when the validation part is too small to make both kinds of pair.
    pub validation_loss: Option<f32>,
    pub validation_acc: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// Receives progress; returning [`Control::Stop`] ends training before the next batch.
pub trait TrainObserver {
    fn on_batch(&mut self, progress: &BatchProgress) -> impl Future<Output = Control>;
    fn on_epoch(&mut self, summary: &EpochSummary) -> impl Future<Output = Control>;
}

/// Training images and the held-out validation images, each with its pair sampler.
pub struct TrainingData {
    pub train: ImageSet,
    pub validation: ImageSet,
    train_pairs: PairSampler,
    /// Fixed for the whole run so epochs compare; None when validation cannot make both kinds.
    validation_pairs: Option<Vec<Pair>>,
}

impl TrainingData {
    /// Holds out `config.validation_split` of each class; refuses a set that cannot train.
    pub fn split(set: &ImageSet, config: &TrainConfig) -> Result<Self, TrainError> {
        config.validate()?;
        let (train, validation) = set.split(config.validation_split, config.seed);
        let train_pairs = PairSampler::with_seed(train.labels(), &train.class_names, config.seed)?;
        let validation_pairs =
            PairSampler::with_seed(validation.labels(), &validation.class_names, !config.seed)
                .ok()
                .map(|sampler| sampler.epoch_pairs(0));
        Ok(Self {
            train,
            validation,
            train_pairs,
            validation_pairs,
        })
    }
}

/// A finished (or stopped) run.
pub struct TrainedModel {
    pub model: SiameseNet,
    pub model_config: SiameseNetConfig,
    pub history: Vec<EpochSummary>,
    /// True when the observer stopped the run early.
    pub stopped: bool,
    /// Set when the loss blew up (or the embeddings collapsed) after at least one good epoch:
    /// `model` and `history` are then those of the last good epoch.
    pub interrupted: Option<TrainError>,
    pub pairs_per_s: f64,
    pub train_s: f64,
}

/// Stacks `pairs` into one batch of `2n` images (left images, then right ones) and their labels.
fn pair_batch(set: &ImageSet, pairs: &[Pair], device: &Device) -> (Tensor<4>, Tensor<1>) {
    let shape = set.shape;
    let mut pixels = Vec::with_capacity(2 * pairs.len() * shape.pixels());
    for pair in pairs {
        pixels.extend_from_slice(set.image(pair.left));
    }
    for pair in pairs {
        pixels.extend_from_slice(set.image(pair.right));
    }
    let images = Tensor::from_data(
        TensorData::new(
            pixels,
            [2 * pairs.len(), shape.channels, shape.height, shape.width],
        ),
        device,
    );
    let dissimilar: Vec<f32> = pairs
        .iter()
        .map(|p| f32::from(u8::from(p.dissimilar)))
        .collect();
    (
        images,
        Tensor::from_data(TensorData::new(dissimilar, [pairs.len()]), device),
    )
}

/// Pairs per forward pass when no gradient is kept: larger than training batches, still small
/// enough for 224x224x3 images.
const INFERENCE_BATCH: usize = 128;

/// Distances of `pairs` under `model`, without autodiff.
pub async fn pair_distances(
    model: &SiameseNet,
    set: &ImageSet,
    pairs: &[Pair],
    device: &Device,
) -> Result<Vec<f32>, TrainError> {
    let model = model.valid();
    let device = device.clone().without_autodiff();
    let mut distances = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(INFERENCE_BATCH) {
        let (images, _) = pair_batch(set, chunk, &device);
        let data = model
            .pair_distances(images)
            .into_data_async()
            .await
            .map_err(backend_error)?;
        distances.extend(data.iter::<f32>());
    }
    Ok(distances)
}

/// The embedding of every image of `set`, without autodiff.
pub async fn embed_images(
    model: &SiameseNet,
    set: &ImageSet,
    device: &Device,
) -> Result<Embeddings, TrainError> {
    let model = model.valid();
    let device = device.clone().without_autodiff();
    let shape = set.shape;
    let mut values = Vec::new();
    let mut dim = 0;
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks(2 * INFERENCE_BATCH) {
        let pixels: Vec<f32> = chunk.iter().flat_map(|&i| set.image(i)).copied().collect();
        let images = Tensor::from_data(
            TensorData::new(
                pixels,
                [chunk.len(), shape.channels, shape.height, shape.width],
            ),
            &device,
        );
        let embedded = model.embed(images);
        dim = embedded.dims()[1];
        let data = embedded.into_data_async().await.map_err(backend_error)?;
        values.extend(data.iter::<f32>());
    }
    Ok(Embeddings::new(dim, values, set.labels().to_vec()))
}

fn dissimilar_flags(pairs: &[Pair]) -> Vec<bool> {
    pairs.iter().map(|p| p.dissimilar).collect()
}

/// Mean contrastive loss of known distances, through the same `ContrastiveLoss` as training.
async fn mean_loss(
    loss_fn: &ContrastiveLoss,
    distances: &[f32],
    dissimilar: &[bool],
    device: &Device,
) -> Result<f32, TrainError> {
    let device = device.clone().without_autodiff();
    let labels: Vec<f32> = dissimilar.iter().map(|&y| f32::from(u8::from(y))).collect();
    let loss = loss_fn.forward(
        Tensor::from_data(
            TensorData::new(distances.to_vec(), [distances.len()]),
            &device,
        ),
        Tensor::from_data(TensorData::new(labels, [dissimilar.len()]), &device),
    );
    loss.into_scalar_async().await.map_err(backend_error)
}

/// A batch loss above this has diverged even if finite: a pair's loss is at most margin² when
/// dissimilar and D² when similar, and a working tower keeps D within a few margins (an
/// untrained one too: its ReLU embeddings start at distances of a few units).
fn exploded_loss(margin: f32) -> f32 {
    1e6 * margin.max(1.0).powi(2)
}

/// Below this for every validation pair, the embeddings have collapsed to one point: the floor
/// is sqrt(DISTANCE_EPSILON) ~ 3e-4, while a model that learned anything puts dissimilar pairs
/// near the margin.
const COLLAPSED_DISTANCE: f32 = 1e-3;

/// Trains a new model on `data` with Adam; `device` must have autodiff enabled.
pub async fn train(
    data: &TrainingData,
    config: &TrainConfig,
    device: &Device,
    observer: &mut impl TrainObserver,
) -> Result<TrainedModel, TrainError> {
    config.validate()?;
    device.seed(config.seed);
    let model_config = SiameseNetConfig::for_shape(data.train.shape);
    let mut model = model_config.init(device).map_err(TrainError::Settings)?;
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = ContrastiveLoss::new().with_margin(config.margin);

    let started = Instant::now();
    let mut pairs_seen = 0usize;
    let mut history = Vec::new();
    let mut stopped = false;
    // The model after the newest epoch that validated well, to fall back on if a later one fails.
    let mut last_good: Option<SiameseNet> = None;
    let mut interrupted = None;
    'epochs: for epoch in 1..=config.epochs {
        let pairs = data.train_pairs.epoch_pairs(epoch);
        let steps_per_epoch = pairs.len().div_ceil(config.batch_size);
        let mut loss_sum = 0.0f64;
        for (step, batch) in pairs.chunks(config.batch_size).enumerate() {
            let (images, dissimilar) = pair_batch(&data.train, batch, device);
            let loss = loss_fn.forward(model.pair_distances(images), dissimilar);
            let loss_value: f32 = loss
                .clone()
                .into_scalar_async()
                .await
                .map_err(backend_error)?;
            if loss_value.is_nan() || loss_value > exploded_loss(config.margin) {
                interrupted = Some(TrainError::Diverged {
                    epoch,
                    step: step + 1,
                    loss: loss_value,
                });
                break 'epochs;
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(config.learning_rate, model, grads);

            loss_sum += f64::from(loss_value) * batch.len() as f64;
            pairs_seen += batch.len();
            let elapsed_s = started.elapsed().as_secs_f64();
            let progress = BatchProgress {
                epoch,
                epochs: config.epochs,
                step: step + 1,
                steps_per_epoch,
                loss: loss_value,
                pairs_per_s: pairs_seen as f64 / elapsed_s.max(1e-9),
                elapsed_s,
            };
            if observer.on_batch(&progress).await == Control::Stop {
                stopped = true;
                break 'epochs;
            }
        }
        let mut summary = EpochSummary {
            epoch,
            train_loss: (loss_sum / pairs.len() as f64) as f32,
            validation_loss: None,
            validation_acc: None,
        };
        if let Some(pairs) = &data.validation_pairs {
            let distances = pair_distances(&model, &data.validation, pairs, device).await?;
            if distances.iter().all(|&d| d < COLLAPSED_DISTANCE) {
                interrupted = Some(TrainError::Collapsed { epoch });
                break 'epochs;
            }
            let flags = dissimilar_flags(pairs);
            summary.validation_loss = Some(mean_loss(&loss_fn, &distances, &flags, device).await?);
            summary.validation_acc = Some(accuracy_at(&distances, &flags, ARTICLE_THRESHOLD));
        }
        let control = observer.on_epoch(&summary).await;
        history.push(summary);
        last_good = Some(model.clone());
        if control == Control::Stop {
            stopped = true;
            break;
        }
    }
    let interrupted = match (interrupted, last_good) {
        (Some(failure), None) => return Err(failure),
        (Some(failure), Some(good)) => {
            model = good;
            Some(failure)
        }
        (None, _) => None,
    };
    let train_s = started.elapsed().as_secs_f64();
    Ok(TrainedModel {
        model,
        model_config,
        history,
        stopped,
        interrupted,
        pairs_per_s: pairs_seen as f64 / train_s.max(1e-9),
        train_s,
    })
}

/// Evaluates on `test` pairs (seeded, balanced), choosing the threshold on the validation
/// pairs, or on the training pairs when the validation part is too small to pair. Returns the
/// test pairs and their distances too.
pub async fn evaluate(
    trained: &TrainedModel,
    data: &TrainingData,
    test: &ImageSet,
    seed: u64,
    device: &Device,
) -> Result<(Evaluation, Vec<Pair>, Vec<f32>), TrainError> {
    let test_pairs = PairSampler::with_seed(test.labels(), &test.class_names, seed)?.epoch_pairs(0);
    let test_distances = pair_distances(&trained.model, test, &test_pairs, device).await?;
    let (threshold_set, threshold_pairs) = match &data.validation_pairs {
        Some(pairs) => (&data.validation, pairs.clone()),
        None => (&data.train, data.train_pairs.epoch_pairs(0)),
    };
    let threshold_distances =
        pair_distances(&trained.model, threshold_set, &threshold_pairs, device).await?;
    let evaluation = Evaluation::new(
        (&threshold_distances, &dissimilar_flags(&threshold_pairs)),
        &test_distances,
        &dissimilar_flags(&test_pairs),
    );
    Ok((evaluation, test_pairs, test_distances))
}

/// Neighbours that vote in k-NN classification.
pub const KNN_K: usize = 5;

/// How well the embeddings serve the downstream task, classifying images, and the embeddings
/// themselves (for the map and for neighbour searches).
pub struct Analysis {
    pub reference: Embeddings,
    pub test: Embeddings,
    /// Test pair accuracy at the model's threshold, from the same seeded pairs as `evaluate`.
    pub pair_acc: f64,
    /// Test images whose `KNN_K` nearest reference images mostly share their class.
    pub knn_acc: f64,
    pub one_shot_acc: f64,
    pub one_shot_ways: usize,
}

/// Embeds `reference` (labelled examples) and `test`, and classifies the test images with them.
pub async fn analyse(
    model: &SiameseNet,
    threshold: f32,
    reference: &ImageSet,
    test: &ImageSet,
    seed: u64,
    device: &Device,
) -> Result<Analysis, TrainError> {
    let reference_embeddings = embed_images(model, reference, device).await?;
    let test_embeddings = embed_images(model, test, device).await?;
    let test_pairs = PairSampler::with_seed(test.labels(), &test.class_names, seed)?.epoch_pairs(0);
    let distances: Vec<f32> = test_pairs
        .iter()
        .map(|pair| {
            let (a, b) = (
                test_embeddings.row(pair.left),
                test_embeddings.row(pair.right),
            );
            let squared: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
            (squared + DISTANCE_EPSILON).sqrt()
        })
        .collect();
    let (one_shot_acc, one_shot_ways) =
        one_shot_accuracy(&reference_embeddings, &test_embeddings, seed);
    Ok(Analysis {
        pair_acc: accuracy_at(&distances, &dissimilar_flags(&test_pairs), threshold),
        knn_acc: knn_accuracy(&reference_embeddings, &test_embeddings, KNN_K),
        one_shot_acc,
        one_shot_ways,
        reference: reference_embeddings,
        test: test_embeddings,
    })
}
