//! The training loop, written by hand (burn-train does not run in wasm) and async so that it runs
//! in a browser: every tensor read is `*_async`, and the observer's callbacks are awaited, which
//! is where a browser worker yields to receive a Stop.

#[cfg(not(target_arch = "wasm32"))]
pub mod burn_train;
pub mod shares;

use std::future::Future;

use burn::config::Config;
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::batch::{HostBatch, PairBatch, epoch_batches};
use crate::data::{ImageSet, ImageShape};
use crate::evaluation::{ARTICLE_THRESHOLD, accuracy_at};
use crate::inference::{dissimilar_flags, pair_distances};
use crate::loss::ContrastiveLoss;
use crate::model::{FIRST_CONV_CHANNELS, SiameseNet, SiameseNetConfig};
use crate::pairs::{Pair, PairError, PairSampler};
use shares::{BatchHelpers, NoHelpers, finish_shares, start_shares};

/// Every knob of a run, with the article's defaults.
#[cfg_attr(test, derive(ts_rs::TS))]
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
    /// Classes left out of training: the unknowns that "none of the above" is measured on, and
    /// the classes one may enrol from a few images afterwards. Test pair figures then use only
    /// the trained classes' test pairs. (An Option so that model files of earlier versions,
    /// which lack the field, still read.)
    pub held_out_classes: Option<Vec<String>>,
}

/// What each setting of [`TrainConfig`] may be, as the messages that refuse a value say it.
pub mod allowed {
    pub const EPOCHS: &str = "a whole number, 1 or more";
    pub const BATCH_SIZE: &str = "a whole number, 1 or more";
    pub const LEARNING_RATE: &str = "a number above 0";
    pub const MARGIN: &str = "a number above 0";
    /// More would leave too few images of a class to train on.
    pub const VALIDATION_SPLIT: &str = "a number from 0 to 0.9";
    pub const SEED: &str = "a whole number from 0 to 18446744073709551615";
}

/// The most of each class a run may hold out for validation.
pub const MAX_VALIDATION_SPLIT: f64 = 0.9;

/// A setting that cannot be used: its name (as the settings form, links and messages name it),
/// the value given, and what it may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingError {
    pub setting: &'static str,
    pub value: String,
    pub allowed: &'static str,
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is \"{}\": it must be {}",
            self.setting, self.value, self.allowed
        )
    }
}

impl std::error::Error for SettingError {}

impl TrainConfig {
    /// The first setting that cannot train, named with its value and what it may be.
    pub fn check(&self) -> Result<(), SettingError> {
        let refuse = |setting, value: &dyn std::fmt::Display, allowed| {
            Err(SettingError {
                setting,
                value: value.to_string(),
                allowed,
            })
        };
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if self.epochs == 0 {
            refuse("epochs", &self.epochs, allowed::EPOCHS)
        } else if self.batch_size == 0 {
            refuse("batch_size", &self.batch_size, allowed::BATCH_SIZE)
        } else if !positive(self.learning_rate) {
            refuse("learning_rate", &self.learning_rate, allowed::LEARNING_RATE)
        } else if !positive(self.margin.into()) {
            refuse("margin", &self.margin, allowed::MARGIN)
        } else if !(0.0..=MAX_VALIDATION_SPLIT).contains(&self.validation_split) {
            let split = &self.validation_split;
            refuse("validation_split", split, allowed::VALIDATION_SPLIT)
        } else {
            Ok(())
        }
    }

    /// Refuses settings that cannot train, before any work starts.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.check()
            .map_err(|err| TrainError::Settings(err.to_string()))
    }

    /// The classes left out of training, by name.
    pub fn held_out(&self) -> &[String] {
        self.held_out_classes.as_deref().unwrap_or_default()
    }

    /// Refuses a held-out class that `class_names` lacks.
    pub fn check_held_out(&self, class_names: &[String]) -> Result<(), TrainError> {
        match self
            .held_out()
            .iter()
            .find(|name| !class_names.contains(name))
        {
            Some(name) => Err(TrainError::Settings(format!(
                "there is no class {name:?} to hold out; the classes are {}",
                class_names.join(", ")
            ))),
            None => Ok(()),
        }
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
#[cfg_attr(test, derive(ts_rs::TS))]
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
#[cfg_attr(test, derive(ts_rs::TS))]
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
    /// The model before training (epoch 0) and after each epoch that validated, for a front
    /// end that shows how the embeddings change.
    fn on_model(
        &mut self,
        _epoch: usize,
        _model: &SiameseNet,
    ) -> impl Future<Output = Result<(), TrainError>> {
        async { Ok(()) }
    }
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
    /// Holds out `config.validation_split` of each class and leaves out the held-out classes;
    /// refuses a set that cannot train.
    pub fn split(set: &ImageSet, config: &TrainConfig) -> Result<Self, TrainError> {
        config.validate()?;
        config.check_held_out(&set.class_names)?;
        let trained_classes = set.without_classes(config.held_out());
        let (train, validation) = trained_classes.split(config.validation_split, config.seed);
        let train_pairs = PairSampler::with_seed(train.labels(), &train.class_names, config.seed)
            .map_err(|err| {
            // The whole training part pairs: the validation split took too much of it.
            match PairSampler::new(trained_classes.labels(), &trained_classes.class_names) {
                Ok(_) => TrainError::Settings(format!(
                    "validation_split {} leaves too little to train on ({err}): give a \
                         smaller one",
                    config.validation_split
                )),
                Err(_) => TrainError::Data(err),
            }
        })?;
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

    /// The pairs to choose a model's threshold on: the validation pairs, or the training pairs
    /// (of epoch 0, which no epoch trained on) when there are none.
    pub fn threshold_pairs(&self) -> (&ImageSet, Vec<Pair>, ThresholdSource) {
        match &self.validation_pairs {
            Some(pairs) => (&self.validation, pairs.clone(), ThresholdSource::Validation),
            None => (
                &self.train,
                self.train_pairs.epoch_pairs(0),
                ThresholdSource::Training,
            ),
        }
    }
}

/// Where a model's threshold was chosen: never on the test pairs it is judged on.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdSource {
    /// The held-out validation pairs.
    Validation,
    /// The training pairs, when the validation part is empty or too small to pair.
    Training,
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

/// Whether a batch loss has diverged: NaN, or above a bound it cannot reach while finite and
/// sane. A pair's loss is at most margin² when dissimilar and D² when similar, and a working
/// tower keeps D within a few margins (an untrained one too: its ReLU embeddings start at
/// distances of a few units).
fn diverged(loss: f32, margin: f32) -> bool {
    loss.is_nan() || loss > 1e6 * margin.max(1.0).powi(2)
}

/// Below this for every validation pair, the embeddings have collapsed to one point: the floor
/// is sqrt(DISTANCE_EPSILON) ~ 3e-4, while a model that learned anything puts dissimilar pairs
/// near the margin.
const COLLAPSED_DISTANCE: f32 = 1e-3;
/// Training pairs the collapse check looks at when there are no validation pairs.
const COLLAPSE_CHECK_PAIRS: usize = 512;

/// On the CPU a batch trains as micro-batches, their gradients summed into those of the whole
/// batch: the same step, with smaller tensors that stay in the caches (1.3x faster on the digits
/// when introduced; PERFORMANCE.md) and a bounded memory for large images. A micro-batch holds
/// as many pairs as keep the first convolution's output (the largest activation) within that of
/// 32 pairs of digits: 16 was the best of 8, 16 and 32 before the second convolution took
/// F(4x4, 3x3)'s fewer and wider tiles, 32 is now faster in Chromium and on two threads
/// natively; 1 pair of 224x224 images natively, 2 in the browser (`micro_batch_pairs`). A GPU
/// takes the batch whole: there, fewer and larger kernels win.
const CPU_MICRO_BATCH_VALUES: usize = 32 * 2 * FIRST_CONV_CHANNELS * 28 * 28;

/// Pairs per micro-batch on `device` for images of `shape`.
fn micro_batch_pairs(shape: ImageShape, device: &Device) -> usize {
    if device.clone().without_autodiff() != Device::flex() {
        return usize::MAX;
    }
    let first_activation = FIRST_CONV_CHANNELS * shape.height * shape.width;
    let pairs = (CPU_MICRO_BATCH_VALUES / (2 * first_activation)).max(1);
    // The browser's Winograd convolution takes four images at once and pads the rest with zeros
    // (`cpu_kernels`): an even number of pairs wastes none, where 1 pair of 224x224 images
    // would pay for 2.
    if cfg!(target_arch = "wasm32") {
        (pairs / 2 * 2).max(2)
    } else {
        pairs
    }
}

/// `batch` (of images of `shape`) on `device`, as the micro-batches that device trains on.
pub(crate) fn micro_batches(
    batch: HostBatch,
    shape: ImageShape,
    device: &Device,
) -> Vec<PairBatch> {
    batch
        .split(micro_batch_pairs(shape, device))
        .into_iter()
        .map(|part| part.to_device(device))
        .collect()
}

/// The gradients of the mean contrastive loss over `parts` (one batch, cut into micro-batches),
/// scaled by `scale`, and that mean loss (unscaled, detached).
pub(crate) fn batch_gradients(
    model: &SiameseNet,
    parts: Vec<PairBatch>,
    loss_fn: &ContrastiveLoss,
    scale: f32,
) -> (GradientsParams, Tensor<1>) {
    let pairs: usize = parts.iter().map(PairBatch::len).sum();
    let mut accumulator = GradientsAccumulator::new();
    let mut total: Option<Tensor<1>> = None;
    for part in parts {
        // Each part's mean loss weighted by its share of the pairs (1 for a whole batch).
        let weight = part.len() as f32 / pairs as f32;
        let loss = loss_fn.forward(model.pair_distances(part.images), part.dissimilar) * weight;
        let grads = GradientsParams::from_grads((loss.clone() * scale).backward(), model);
        accumulator.accumulate(model, grads);
        let loss = loss.detach();
        total = Some(match total {
            Some(sum) => sum + loss,
            None => loss,
        });
    }
    (accumulator.grads(), total.expect("a batch has pairs"))
}

/// After an epoch, for either engine: the collapse check and, with validation pairs, the
/// validation loss and accuracy. `pairs` are the epoch's training pairs.
async fn check_epoch(
    model: &SiameseNet,
    data: &TrainingData,
    epoch: usize,
    pairs: &[Pair],
    train_loss: f32,
    loss_fn: &ContrastiveLoss,
    device: &Device,
) -> Result<EpochSummary, TrainError> {
    let mut summary = EpochSummary {
        epoch,
        train_loss,
        validation_loss: None,
        validation_acc: None,
    };
    // Without validation pairs, the collapse is looked for on training pairs instead.
    let (check_set, check_pairs) = match &data.validation_pairs {
        Some(pairs) => (&data.validation, &pairs[..]),
        None => (&data.train, &pairs[..pairs.len().min(COLLAPSE_CHECK_PAIRS)]),
    };
    let distances = pair_distances(model, check_set, check_pairs, device).await?;
    if distances.iter().all(|&d| d < COLLAPSED_DISTANCE) {
        return Err(TrainError::Collapsed { epoch });
    }
    if data.validation_pairs.is_some() {
        let flags = dissimilar_flags(check_pairs);
        summary.validation_loss = Some(mean_loss(loss_fn, &distances, &flags, device).await?);
        summary.validation_acc = Some(accuracy_at(&distances, &flags, ARTICLE_THRESHOLD));
    }
    Ok(summary)
}

/// The model a run ends with: after a failure, that of the last good epoch (none: the failure
/// is the run's error).
fn fall_back(
    model: SiameseNet,
    last_good: Option<SiameseNet>,
    interrupted: Option<TrainError>,
) -> Result<(SiameseNet, Option<TrainError>), TrainError> {
    match (interrupted, last_good) {
        (Some(failure), None) => Err(failure),
        (Some(failure), Some(good)) => Ok((good, Some(failure))),
        (None, _) => Ok((model, None)),
    }
}

/// Trains a new model on `data` with Adam; `device` must have autodiff enabled.
pub async fn train(
    data: &TrainingData,
    config: &TrainConfig,
    device: &Device,
    observer: &mut impl TrainObserver,
) -> Result<TrainedModel, TrainError> {
    train_sharing(data, config, device, &mut NoHelpers, observer).await
}

/// [`train`], with `helpers` computing a share of every batch (on the CPU only: a GPU takes
/// the batch whole).
pub async fn train_sharing(
    data: &TrainingData,
    config: &TrainConfig,
    device: &Device,
    helpers: &mut impl BatchHelpers,
    observer: &mut impl TrainObserver,
) -> Result<TrainedModel, TrainError> {
    config.validate()?;
    let on_cpu = device.clone().without_autodiff() == Device::flex();
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
    observer.on_model(0, &model).await?;
    'epochs: for epoch in 1..=config.epochs {
        let pairs = data.train_pairs.epoch_pairs(epoch);
        let steps_per_epoch = pairs.len().div_ceil(config.batch_size);
        let mut loss_sum = 0.0f64;
        let batches = epoch_batches(&data.train, pairs.clone(), config.batch_size);
        // With helpers, a step's progress goes out once the helpers have the next step's
        // shares, so they do not wait for it; the last step of an epoch reports at once.
        let mut deferred: Option<BatchProgress> = None;
        for (step, batch) in batches.enumerate() {
            let batch_pairs = batch.len();
            let (grads, loss_value) = match on_cpu {
                true => {
                    let in_flight = start_shares(&model, batch, &loss_fn, helpers).await?;
                    if let Some(progress) = deferred.take()
                        && observer.on_batch(&progress).await == Control::Stop
                    {
                        stopped = true;
                        break 'epochs;
                    }
                    finish_shares(&model, in_flight, &loss_fn, device, helpers).await?
                }
                false => {
                    let parts = micro_batches(batch, data.train.shape, device);
                    let (grads, loss) = batch_gradients(&model, parts, &loss_fn, 1.0);
                    (
                        grads,
                        loss.into_scalar_async().await.map_err(backend_error)?,
                    )
                }
            };
            if diverged(loss_value, config.margin) {
                interrupted = Some(TrainError::Diverged {
                    epoch,
                    step: step + 1,
                    loss: loss_value,
                });
                break 'epochs;
            }
            model = optimizer.step(config.learning_rate, model, grads);

            loss_sum += f64::from(loss_value) * batch_pairs as f64;
            pairs_seen += batch_pairs;
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
            if on_cpu && helpers.count() > 0 && step + 1 < steps_per_epoch {
                deferred = Some(progress);
            } else if observer.on_batch(&progress).await == Control::Stop {
                stopped = true;
                break 'epochs;
            }
        }
        let train_loss = (loss_sum / pairs.len() as f64) as f32;
        let summary =
            match check_epoch(&model, data, epoch, &pairs, train_loss, &loss_fn, device).await {
                Err(collapse @ TrainError::Collapsed { .. }) => {
                    interrupted = Some(collapse);
                    break 'epochs;
                }
                other => other?,
            };
        let control = observer.on_epoch(&summary).await;
        history.push(summary);
        observer.on_model(epoch, &model).await?;
        last_good = Some(model.clone());
        if control == Control::Stop {
            stopped = true;
            break;
        }
    }
    let (model, interrupted) = fall_back(model, last_good, interrupted)?;
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

#[cfg(test)]
mod tests {
    use burn::module::{Module, ModuleVisitor, Param};

    use super::*;
    use crate::data::mnist::parse_mnist;

    /// The built-in digits and an epoch of their pairs.
    pub(crate) fn digits_and_their_pairs() -> (ImageSet, Vec<Pair>) {
        let digits = parse_mnist(include_bytes!("../../assets/mnist-10k.bin.gz")).unwrap();
        let pairs = PairSampler::with_seed(digits.labels(), &digits.class_names, 5)
            .unwrap()
            .epoch_pairs(1);
        (digits, pairs)
    }

    /// A model for `shape` on flex with autodiff, from seeded weights.
    pub(crate) fn untrained_model(shape: ImageShape) -> (Device, SiameseNet) {
        let device = Device::flex().autodiff();
        device.seed(3);
        let model = SiameseNetConfig::for_shape(shape).init(&device).unwrap();
        (device, model)
    }

    /// The gradient in `grads` of every parameter of `model`, flattened, named by its path
    /// (`conv1.weight`, ..., `dense.bias`); panics when one has none.
    pub(crate) fn every_gradient(
        model: &SiameseNet,
        grads: &GradientsParams,
    ) -> Vec<(String, Vec<f32>)> {
        struct Collect<'a> {
            grads: &'a GradientsParams,
            path: Vec<String>,
            found: Vec<(String, Vec<f32>)>,
        }
        impl ModuleVisitor for Collect<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let name = self.path.join(".");
                let grad = self.grads.get::<D>(param.id);
                let grad = grad.unwrap_or_else(|| panic!("{name}: no gradient"));
                let values = grad.into_data().iter::<f32>().collect();
                self.found.push((name, values));
            }
        }
        let mut collect = Collect {
            grads,
            path: Vec::new(),
            found: Vec::new(),
        };
        model.visit(&mut collect);
        let compared: usize = collect.found.iter().map(|(_, values)| values.len()).sum();
        assert_eq!(compared, model.num_params(), "every parameter visited");
        collect.found
    }

    /// Asserts that `scaled` holds `scale` times the gradients of `grads`, every parameter's
    /// within `tolerance` of its largest gradient.
    pub(crate) fn assert_same_gradients(
        model: &SiameseNet,
        grads: &GradientsParams,
        (scaled, scale): (&GradientsParams, f32),
        tolerance: f32,
    ) {
        let pairs = every_gradient(model, grads).into_iter();
        for ((name, grads), (_, scaled)) in pairs.zip(every_gradient(model, scaled)) {
            let largest = grads.iter().fold(0.0f32, |m, g| m.max(g.abs()));
            assert!(largest > 0.0, "{name}: no gradient");
            for (g, s) in grads.iter().zip(&scaled) {
                assert!(
                    (scale * g - s).abs() <= tolerance * largest,
                    "{name}: {g} against {s} (scaled by {scale})"
                );
            }
        }
    }

    #[test]
    fn micro_batches_give_the_gradients_and_loss_of_the_whole_batch() {
        let (digits, pairs) = digits_and_their_pairs();
        let (device, model) = untrained_model(digits.shape);
        let loss_fn = ContrastiveLoss::new();
        let parts = |micro: usize| -> Vec<PairBatch> {
            let batch = HostBatch::new(&digits, &pairs[..10]);
            batch
                .split(micro)
                .into_iter()
                .map(|part| part.to_device(&device))
                .collect()
        };
        let (whole, whole_loss) = batch_gradients(&model, parts(10), &loss_fn, 1.0);
        let (micro, micro_loss) = batch_gradients(&model, parts(3), &loss_fn, 0.5);
        let values = |tensor: Tensor<1>| tensor.into_data().iter::<f32>().collect::<Vec<_>>();
        let whole_loss = values(whole_loss)[0];
        assert!(whole_loss > 0.0);
        assert!((values(micro_loss)[0] - whole_loss).abs() < 1e-5 * whole_loss.max(1.0));
        // Sums taken in another order, in vectors of other widths, round differently.
        assert_same_gradients(&model, &whole, (&micro, 0.5), 1e-5);
    }
}
