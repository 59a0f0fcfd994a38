//! Training through Burn's own engine, natively: `burn-train`'s supervised training, on one
//! device or data-parallel on several (`ExecutionStrategy::multi`: each device takes its share of
//! every batch, the gradients are summed on the first, which steps Adam for all), with a
//! checkpoint after every epoch so that a long run resumes. The batches are the session loop's,
//! each cut into one share per device ([`EpochShares`]). The split, pairs, loss, per-epoch
//! checks and the report are those of the session's own loop ([`super::train`]), which the
//! browser uses: burn-train does not run in wasm.
//!
//! Each epoch is one launch of burn-train that resumes from the previous epoch's checkpoint
//! (model and Adam's state), so that every epoch trains on its own pairs, as in the session's
//! loop, and is checked (collapse, validation) between launches. On one device the figures are
//! the session loop's to the last digit (tests/cli.rs).
//!
//! `multi`, not `ddp`, on every backend: Burn 0.22.1 has the all-reduce of `ddp` for CUDA only
//! (on the CPU it panics, "Distributed operations are not supported for device Flex(Cpu)"), so
//! no test here could run it. The batches are read on the training thread: Burn's loader with
//! `num_workers` hands them over in whatever order its workers finish, and a seeded run would
//! no longer give the same figures twice.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::{Dataset, DatasetError};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, ExecutionError};
use burn::train::checkpoint::{Checkpointer, FileCheckpointer, KeepLastNCheckpoints};
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::ItemLazy;
use burn::train::metric::MetricDefinition;
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use burn::train::{
    ExecutionStrategy, InferenceStep, Interrupter, Learner, LearningResult, MultiDeviceOptim,
    SupervisedTraining, TrainOutput, TrainStep,
};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use super::{
    BatchProgress, Control, EpochSummary, TrainConfig, TrainError, TrainObserver, TrainedModel,
    TrainingData, batch_gradients, check_epoch, diverged, fall_back, micro_batches,
};
use crate::batch::{HostBatch, PairBatch};
use crate::data::{ImageSet, ImageShape};
use crate::loss::ContrastiveLoss;
use crate::model::{SiameseNet, SiameseNetConfig};
use crate::pairs::Pair;

/// Where burn-train runs: its devices (with autodiff; the first holds the model and steps
/// Adam) and the folder of its checkpoints, None for a throw-away one.
pub struct BurnTrainRun {
    pub devices: Vec<Device>,
    /// How the run's figures name the devices: `cpu,cpu`, `cuda:0,cuda:1`.
    pub label: String,
    pub checkpoints: Option<PathBuf>,
}

/// The tower as burn-train's model: a step's loss is the contrastive loss of its pairs, and each
/// step's loss value is sent to the loop that reports progress.
#[derive(Module, Debug)]
struct Twin {
    net: SiameseNet,
    #[module(skip)]
    margin: f32,
    #[module(skip)]
    losses: Sender<Message>,
}

/// What the training thread tells the reporting loop.
enum Message {
    /// One device's share of a step: its pairs and their mean loss.
    Step { pairs: usize, loss: f32 },
    /// The launch returned.
    Finished(Box<LearningResult<Twin>>),
    /// The launch panicked, saying this.
    Failed(String),
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(message), _) => message.to_string(),
        (_, Some(message)) => message.clone(),
        _ => "burn-train panicked".into(),
    }
}

/// One device's share of a batch, as the micro-batches the session's loop would cut it into
/// (none for a device without a pair in a short last batch).
#[derive(Clone, Debug)]
struct TwinBatch {
    parts: Vec<PairBatch>,
    /// [`Share::scale`].
    scale: f32,
}

impl TwinBatch {
    fn pairs(&self) -> usize {
        self.parts.iter().map(PairBatch::len).sum()
    }
}

/// What a step gives burn-train: the loss its observer was already sent (burn-train's metrics
/// are not used).
struct StepLoss;

impl ItemLazy for StepLoss {
    fn sync(self) -> Result<Self, ExecutionError> {
        Ok(self)
    }
}

impl Twin {
    fn loss_fn(&self) -> ContrastiveLoss {
        ContrastiveLoss::new().with_margin(self.margin)
    }
}

impl TrainStep for Twin {
    type Input = TwinBatch;
    type Output = StepLoss;

    fn step(&self, batch: TwinBatch) -> TrainOutput<StepLoss> {
        let pairs = batch.pairs();
        // A device's empty share of a short last batch adds no gradient.
        if pairs == 0 {
            return TrainOutput {
                grads: GradientsParams::new(),
                item: StepLoss,
            };
        }
        let (grads, loss) = batch_gradients(&self.net, batch.parts, &self.loss_fn(), batch.scale);
        // Natively a read blocks; the session's loop reads every step's loss too.
        let _ = self.losses.send(Message::Step {
            pairs,
            loss: loss.into_scalar(),
        });
        TrainOutput {
            grads,
            item: StepLoss,
        }
    }
}

/// Never called: validation is the session's own, between launches (burn-train is given no
/// validation pairs).
impl InferenceStep for Twin {
    type Input = TwinBatch;
    type Output = StepLoss;

    fn step(&self, _: TwinBatch) -> StepLoss {
        StepLoss
    }
}

/// One device's share of one batch.
#[derive(Clone, Debug)]
struct Share {
    pairs: Vec<Pair>,
    /// Its pairs over the batch's: it scales the share's loss before the backward pass, and
    /// burn-train sums the devices' gradients, so that the sum is the gradient of the batch's
    /// mean loss, as on one device.
    scale: f32,
}

/// An epoch's batches, the session loop's (`batch_size` pairs in order, the last one shorter),
/// each cut into one share per device, as evenly as can be: the first shares take a pair more,
/// and a device gets an empty share of a last batch with fewer pairs than devices. Laid out for
/// burn-train's `multi` strategy, which gives each device an equal run of the items
/// (`split_dataloader`) and, each step, the next item of each run: device `d`'s share of step
/// `s` is item `d * steps + s`.
struct EpochShares(Vec<Share>);

impl EpochShares {
    fn new(pairs: &[Pair], batch_size: usize, devices: usize) -> Self {
        let batches: Vec<&[Pair]> = pairs.chunks(batch_size).collect();
        let share = |batch: &[Pair], device: usize| {
            let (each, larger) = (batch.len() / devices, batch.len() % devices);
            let start = device * each + device.min(larger);
            let pairs = &batch[start..start + each + usize::from(device < larger)];
            Share {
                pairs: pairs.to_vec(),
                scale: pairs.len() as f32 / batch.len() as f32,
            }
        };
        Self(
            (0..devices)
                .flat_map(|device| batches.iter().map(move |batch| share(batch, device)))
                .collect(),
        )
    }
}

impl Dataset<Share> for EpochShares {
    fn get(&self, index: usize) -> Result<Share, DatasetError> {
        self.0
            .get(index)
            .cloned()
            .ok_or_else(|| DatasetError::new(std::io::Error::other(format!("no share {index}"))))
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

#[derive(Clone)]
struct TwinBatcher {
    set: ImageSet,
}

impl Batcher<Share, TwinBatch> for TwinBatcher {
    /// `shares` holds one share: the loaders take one item at a time ([`epoch_loader`]).
    fn batch(&self, shares: Vec<Share>, device: &Device) -> TwinBatch {
        let [share] = <[Share; 1]>::try_from(shares).expect("one share a batch");
        let parts = match share.pairs.is_empty() {
            true => Vec::new(),
            false => {
                let batch = HostBatch::new(&self.set, &share.pairs);
                micro_batches(batch, self.set.shape, device)
            }
        };
        TwinBatch {
            parts,
            scale: share.scale,
        }
    }
}

/// burn-train's loader of an epoch's `pairs` of `set` in batches of `batch_size` on `devices`
/// devices: their [`EpochShares`], one at a time.
fn epoch_loader(
    set: &ImageSet,
    pairs: &[Pair],
    batch_size: usize,
    devices: usize,
) -> Arc<dyn DataLoader<TwinBatch>> {
    let batcher = TwinBatcher { set: set.clone() };
    let shares = EpochShares::new(pairs, batch_size, devices);
    DataLoaderBuilder::new(batcher).batch_size(1).build(shares)
}

/// burn-train's renderer, silenced: progress reaches the observer through [`Message::Step`],
/// and stdout is the command line's JSON.
struct Quiet;

impl MetricsRendererTraining for Quiet {
    fn update_train(&mut self, _: MetricState) {}
    fn update_valid(&mut self, _: MetricState) {}
}

impl MetricsRendererEvaluation for Quiet {
    fn update_test(&mut self, _: EvaluationName, _: MetricState) {}
}

impl TrainingProgressLogger for Quiet {
    fn start(&mut self, _: usize, _: usize, _: Option<usize>, _: Option<&str>) {}
    fn update_epoch(&mut self, _: usize) {}
    fn start_split(&mut self, _: &str, _: usize) {}
    fn update_split(&mut self, _: usize) {}
    fn end_split(&mut self) {}
    fn end(&mut self) {}
    fn log_event_training(&mut self, _: String) {}
}

impl EvaluationProgressLogger for Quiet {
    fn start_global_progress(&mut self, _: usize) {}
    fn start_test(&mut self, _: &str, _: usize) {}
    fn update_test_progress(&mut self, _: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _: String) {}
}

impl MetricsRenderer for Quiet {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _: MetricDefinition) {}
}

/// What a checkpoint folder says of its run, so that a resumed run is the same one: the
/// settings (the epoch count aside, which a resumed run may raise), the data, and the epochs
/// already trained.
#[derive(Serialize, Deserialize)]
struct Journal {
    config: TrainConfig,
    data: DataIdentity,
    history: Vec<EpochSummary>,
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Debug)]
struct DataIdentity {
    shape: ImageShape,
    class_names: Vec<String>,
    train_images: usize,
    validation_images: usize,
}

const JOURNAL_FILE: &str = "run.json";

impl Journal {
    /// The folder's journal, or a new one; refuses a folder of another run.
    fn open(dir: &Path, config: &TrainConfig, data: &TrainingData) -> Result<Self, TrainError> {
        let identity = DataIdentity {
            shape: data.train.shape,
            class_names: data.train.class_names.clone(),
            train_images: data.train.len(),
            validation_images: data.validation.len(),
        };
        let path = dir.join(JOURNAL_FILE);
        let mut journal = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Journal>(&bytes)
                .map_err(|err| checkpoint_error(&path, &format!("not a run's journal: {err}")))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Journal {
                config: config.clone(),
                data: identity.clone(),
                history: Vec::new(),
            },
            Err(err) => return Err(checkpoint_error(&path, &err.to_string())),
        };
        let mut same_settings = journal.config.clone();
        same_settings.epochs = config.epochs;
        let differs = |what: &str| {
            checkpoint_error(
                &path,
                &format!(
                    "the checkpoints are of a run with other {what}; use another folder, or \
                     delete this one to start again"
                ),
            )
        };
        if serde_json::to_value(&same_settings).ok() != serde_json::to_value(config).ok() {
            return Err(differs("settings"));
        }
        if journal.data != identity {
            return Err(differs("data"));
        }
        journal.config = config.clone();
        Ok(journal)
    }

    fn save(&self, dir: &Path) -> Result<(), TrainError> {
        let path = dir.join(JOURNAL_FILE);
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(self).unwrap()));
        written.map_err(|err| checkpoint_error(&path, &err.to_string()))
    }
}

/// The epochs of the run a checkpoint folder holds: 0 for a new folder (or one that is not a
/// run's, which training then refuses with the reason).
pub fn epochs_done(dir: &Path) -> usize {
    std::fs::read(dir.join(JOURNAL_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Journal>(&bytes).ok())
        .map_or(0, |journal| journal.history.len())
}

fn checkpoint_error(path: &Path, why: &str) -> TrainError {
    TrainError::Settings(format!("{}: {why}", path.display()))
}

/// A folder of its own for a run without `checkpoints`, removed when the run ends.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Trains `data` as [`super::train`] does, through burn-train on `run.devices`. With
/// `run.checkpoints` naming a folder that holds epochs of the same run, training resumes after
/// the last of them.
pub async fn train_with_burn(
    data: &TrainingData,
    config: &TrainConfig,
    run: &BurnTrainRun,
    observer: &mut impl TrainObserver,
) -> Result<TrainedModel, TrainError> {
    config.validate()?;
    let main = run
        .devices
        .first()
        .ok_or(TrainError::Settings("no device to train on".into()))?;
    let replicas = run.devices.len();
    if config.batch_size < replicas {
        return Err(TrainError::Settings(format!(
            "a batch of {} pairs cannot be shared by {replicas} devices",
            config.batch_size
        )));
    }
    let (dir, _scratch) = match &run.checkpoints {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!(
                "siamese-burn-train-{}-{}",
                std::process::id(),
                config.seed
            ));
            (dir.clone(), Some(ScratchDir(dir)))
        }
    };
    let mut journal = Journal::open(&dir, config, data)?;
    main.seed(config.seed);
    let model_config = SiameseNetConfig::for_shape(data.train.shape);
    let (losses, messages) = channel();
    let initial = Twin {
        net: model_config.init(main).map_err(TrainError::Settings)?,
        margin: config.margin,
        losses,
    };
    let model_checkpoints = FileCheckpointer::new(dir.join("checkpoint"), "model");
    let resumed = journal.history.len();
    let mut model = match resumed {
        0 => initial.clone(),
        epoch => initial.clone().load_record(
            model_checkpoints
                .restore(epoch)
                .map_err(|err| checkpoint_error(&dir, &format!("epoch {epoch}: {err}")))?,
        ),
    };
    let mut last_good = (resumed > 0).then(|| model.net.clone());
    let loss_fn = ContrastiveLoss::new().with_margin(config.margin);

    let started = Instant::now();
    let mut pairs_seen = 0usize;
    let mut stopped = false;
    let mut interrupted = None;
    // A resumed run shows the embeddings from the epoch it resumes after.
    observer.on_model(resumed, &model.net).await?;
    for epoch in resumed + 1..=config.epochs {
        let pairs = data.train_pairs.epoch_pairs(epoch);
        let steps_per_epoch = pairs.len().div_ceil(config.batch_size);
        let train_loader = epoch_loader(&data.train, &pairs, config.batch_size, replicas);
        // Validation is the session's own, between launches: burn-train's has nothing to do.
        let valid_loader = epoch_loader(&data.train, &[], config.batch_size, replicas);
        let interrupter = Interrupter::new();
        // burn-train is driven from a thread of its own (its trainer is built there: it is not
        // Send), while this one reports each step to the observer and stops it when asked.
        let launch = {
            let (dir, devices, interrupter) =
                (dir.clone(), run.devices.clone(), interrupter.clone());
            let learner = Learner::new(
                initial.clone(),
                AdamConfig::new().init(),
                config.learning_rate,
            );
            let sender = initial.losses.clone();
            std::thread::spawn(move || {
                // A panic in Burn (a failing GPU) ends the run with its message, not a hang.
                let launched = std::panic::catch_unwind(AssertUnwindSafe(move || {
                    let strategy =
                        ExecutionStrategy::multi(devices, MultiDeviceOptim::OptimMainDevice);
                    let mut training = SupervisedTraining::new(&dir, train_loader, valid_loader)
                        .with_training_strategy(strategy.into())
                        .with_default_checkpointers()
                        .with_checkpointing_strategy(KeepLastNCheckpoints::new(2))
                        .with_application_logger(None)
                        .with_interrupter(interrupter)
                        .renderer(Box::new(Quiet))
                        .num_epochs(epoch);
                    if epoch > 1 {
                        training = training.checkpoint(epoch - 1);
                    }
                    training.launch(learner)
                }));
                let _ = sender.send(match launched {
                    Ok(result) => Message::Finished(Box::new(result)),
                    Err(panic) => Message::Failed(panic_message(panic.as_ref())),
                });
            })
        };
        let mut epoch_pairs = 0usize;
        let mut loss_sum = 0.0f64;
        let mut step_shares = 0usize;
        let result = loop {
            // The sending side is never closed while `initial` lives: the launch's thread always
            // ends with Finished or Failed.
            let message = messages.recv().expect("the run holds a sender");
            let (pairs, loss) = match message {
                Message::Finished(result) => break *result,
                Message::Failed(message) => {
                    let _ = launch.join();
                    return Err(TrainError::Backend(message));
                }
                Message::Step { pairs, loss } => (pairs, loss),
            };
            if interrupted.is_some() || stopped {
                continue; // the other shares of a step that stopped the run
            }
            epoch_pairs += pairs;
            pairs_seen += pairs;
            loss_sum += f64::from(loss) * pairs as f64;
            step_shares += 1;
            let step = step_shares.div_ceil(replicas);
            if diverged(loss, config.margin) {
                interrupted = Some(TrainError::Diverged { epoch, step, loss });
                interrupter.stop(Some("the loss diverged"));
                continue;
            }
            let elapsed_s = started.elapsed().as_secs_f64();
            let progress = BatchProgress {
                epoch,
                epochs: config.epochs,
                step,
                steps_per_epoch,
                loss,
                pairs_per_s: pairs_seen as f64 / elapsed_s.max(1e-9),
                elapsed_s,
            };
            if observer.on_batch(&progress).await == Control::Stop {
                stopped = true;
                interrupter.stop(Some("stopped"));
            }
        };
        let _ = launch.join();
        if let Some(error) = result.error {
            return Err(TrainError::Backend(error.to_string()));
        }
        model = result.model;
        if interrupted.is_some() || stopped {
            break;
        }
        let train_loss = (loss_sum / epoch_pairs.max(1) as f64) as f32;
        let summary =
            match check_epoch(&model.net, data, epoch, &pairs, train_loss, &loss_fn, main).await {
                Err(collapse @ TrainError::Collapsed { .. }) => {
                    interrupted = Some(collapse);
                    break;
                }
                other => other?,
            };
        let control = observer.on_epoch(&summary).await;
        journal.history.push(summary);
        journal.save(&dir)?;
        observer.on_model(epoch, &model.net).await?;
        last_good = Some(model.net.clone());
        if control == Control::Stop {
            stopped = true;
            break;
        }
    }
    let (net, interrupted) = fall_back(model.net, last_good, interrupted)?;
    let train_s = started.elapsed().as_secs_f64();
    Ok(TrainedModel {
        model: net,
        model_config,
        history: journal.history,
        stopped,
        interrupted,
        pairs_per_s: pairs_seen as f64 / train_s.max(1e-9),
        train_s,
    })
}

#[cfg(test)]
mod tests {
    use burn::data::dataloader::split::split_dataloader;
    use burn::optim::GradientsAccumulator;

    use super::*;
    use crate::training::tests::{assert_same_gradients, digits_and_their_pairs, untrained_model};

    #[test]
    fn the_devices_shares_of_a_step_give_the_gradients_and_loss_of_its_batch() {
        let (digits, pairs) = digits_and_their_pairs();
        let (device, net) = untrained_model(digits.shape);
        let (losses, messages) = channel();
        let twin = Twin {
            net,
            margin: 1.0,
            losses,
        };
        // Batches of 10 pairs on 3 devices, which 10 does not divide; the last batch, of 2
        // pairs, has fewer pairs than devices.
        let (pairs, batch_size, devices) = (&pairs[..22], 10, vec![device.clone(); 3]);
        // As burn-train's `multi` strategy splits the loader, and takes a batch of each device's
        // part a step.
        let loader = epoch_loader(&digits, pairs, batch_size, devices.len());
        let loaders = split_dataloader(loader, &devices);
        let mut devices_batches: Vec<_> = loaders.iter().map(|loader| loader.iter()).collect();
        for batch in pairs.chunks(batch_size) {
            let mut sum = GradientsAccumulator::new();
            for device_batches in &mut devices_batches {
                if let Some(share) = device_batches.next() {
                    let share = share.expect("a share");
                    sum.accumulate(&twin, TrainStep::step(&twin, share).grads);
                }
            }
            let (mut step_pairs, mut loss_sum) = (0, 0.0);
            for message in messages.try_iter() {
                let Message::Step { pairs, loss } = message else {
                    panic!("a step sends its loss")
                };
                step_pairs += pairs;
                loss_sum += loss * pairs as f32;
            }
            assert_eq!(step_pairs, batch.len(), "a step's pairs");

            let parts = micro_batches(HostBatch::new(&digits, batch), digits.shape, &device);
            let (grads, loss) = batch_gradients(&twin.net, parts, &twin.loss_fn(), 1.0);
            let loss: f32 = loss.into_scalar();
            let step_loss = loss_sum / step_pairs as f32;
            assert!(
                (step_loss - loss).abs() < 1e-5 * loss,
                "{step_loss} against {loss}"
            );
            // Sums taken in another order, in vectors of other widths, round differently.
            assert_same_gradients(&twin.net, &grads, (&sum.grads(), 1.0), 1e-5);
        }
        assert!(
            devices_batches
                .iter_mut()
                .all(|batches| batches.next().is_none())
        );
    }
}
