//! One session: the data, the current model and its reference embeddings, and every command a
//! front end can send, with the policies in one place (which images each figure is measured on,
//! the shape checks, when a model is analysed, what a run reports). The browser worker
//! (`crate::web`), the command line and the native tests all drive this same type, so the same
//! seed and data give the same split, the same pairs and the same figures everywhere.
//!
//! A command's replies go to its [`Host`], which also gives what only the place the session
//! runs in has: fetching a URL, the WebGPU probe, yielding between batches, memory figures.

pub mod dataset;
pub mod messages;
mod recognition;
pub mod settings;
mod thumbnails;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use burn::tensor::Device;

pub use dataset::{Dataset, SPLIT_SEED, TestPart};
use dataset::{sample_indices, stratified_sample};
use messages::*;
use recognition::default_unknown_distance;
use settings::{Run, RunSettings};
use thumbnails::{small_thumbnail, thumbnail};

use crate::backend::{Backend, training_device};
use crate::benchmark::{BenchmarkJob, run_benchmark};
use crate::data::images::{LabelledFile, LabelledImages, decode_keyed_image};
use crate::data::mnist::parse_mnist;
use crate::data::pixels::PixelStore;
use crate::data::split::ImageKey;
use crate::data::{ImageSet, ImageShape};
use crate::embeddings::{Embeddings, Pca2, hardest_pairs};
use crate::evaluation::{Evaluation, best_threshold};
use crate::inference::{
    KNN_K, classify, dissimilar_flags, embed_images, pair_accuracy, pair_distances,
};
use crate::model::{SiameseNet, SiameseNetConfig};
use crate::model_file::{MODEL_FILE_EXTENSION, ModelInfo, SeenImages, load_model, save_model};
use crate::open_set::Prototypes;
use crate::pairs::Pair;
use crate::projector::{EmbeddedPart, ProjectorFiles, projector_archive, projector_files};
#[cfg(not(target_arch = "wasm32"))]
use crate::training::burn_train::{BurnTrainRun, train_with_burn};
use crate::training::shares::{BatchHelpers, NoHelpers};
use crate::training::{
    BatchProgress, Control, EpochSummary, TrainConfig, TrainError, TrainObserver, TrainingData,
    train, train_sharing,
};

const GALLERY_PAIRS: usize = 12;
/// About this many training images (a stratified sample, each class rounded) serve as the
/// labelled examples of k-NN, one-shot and neighbour searches, and at most this many test images
/// are classified: enough for a stable figure, few enough to embed in seconds on the CPU.
pub const ANALYSIS_IMAGES: usize = 2000;
/// Points on the embedding map, and the largest side of their thumbnails.
const MAP_POINTS: usize = 500;
const MAP_THUMBNAIL_SIDE: usize = 32;
/// Validation images the default unknown distance is chosen on, at most.
const VALIDATION_IMAGES: usize = 1000;
/// Hardest pairs shown of each kind.
const HARDEST_PAIRS: usize = 6;
/// Workers a run may ask for: more than cores only adds overhead, and each holds a model.
pub const MAX_WORKERS: usize = 64;

/// What a session needs from the place it runs in: a browser worker, a terminal, a test.
pub trait Host {
    /// Delivers a reply to the command being handled.
    fn send(&mut self, reply: Reply);
    /// The bytes at `url` (the built-in digits beside the app's files).
    fn fetch(&mut self, url: &str) -> impl Future<Output = Result<Vec<u8>, String>>;
    /// What WebGPU this host offers.
    fn webgpu(&mut self) -> impl Future<Output = WebGpuSupport>;
    /// Called after every batch and between long pieces of work: a browser worker yields to its
    /// event loop here, so that a Stop (or any other message) arrives.
    fn yield_now(&mut self) -> impl Future<Output = ()>;
    /// The memory the host's process holds, reported after each epoch (it must stay flat).
    fn memory_bytes(&self) -> f64;
    /// Where the images of uploaded files are kept: in memory, unless the host keeps them
    /// elsewhere (the command line's `--cache DIR`, on disk).
    fn pixel_store(&mut self, shape: ImageShape) -> Result<PixelStore, String> {
        Ok(PixelStore::in_memory(shape.pixels()))
    }
    /// Natively, burn-train's devices and checkpoint folder when the host was given them (the
    /// command line's `--device cpu,cpu`, `--checkpoints DIR`); None trains with the session's
    /// own loop on the device [`choose_device`] picks.
    #[cfg(not(target_arch = "wasm32"))]
    fn burn_train(&mut self) -> impl Future<Output = Result<Option<BurnTrainRun>, String>> {
        async { Ok(None) }
    }
    /// `count` helpers to compute shares of every CPU batch: the browser's Web Workers, the
    /// command line's threads. One that cannot start is left out.
    fn helpers(&mut self, count: usize) -> impl Future<Output = impl BatchHelpers + 'static> {
        let _ = count;
        async { NoHelpers }
    }
    /// The GPU a run trains on when it asks for one: WebGPU, unless the host was given another
    /// (the command line's `--device cuda:1`).
    fn gpu(&mut self) -> impl Future<Output = Gpu> {
        async {
            Gpu {
                backend: "webgpu".into(),
                label: "WebGPU".into(),
                device: training_device(Backend::Wgpu).await,
            }
        }
    }
}

/// A host's GPU, set up.
pub struct Gpu {
    /// How a run's figures name it: `webgpu`, or natively `cuda:0`, `vulkan`...
    pub backend: String,
    /// How messages name it.
    pub label: String,
    /// With autodiff, or why there is none.
    pub device: Result<Device, String>,
}

/// The device a run trains on, its name as the front ends show it, and why it was chosen.
pub struct ChosenDevice {
    pub device: Device,
    pub backend: String,
    pub reason: String,
}

/// Picks the device: the host's GPU when asked, or for `auto` when its WebGPU adapter is a real
/// GPU; else the CPU, saying why. A software adapter (SwiftShader) trains ~20x slower than the
/// CPU backend, so `auto` skips it.
pub async fn choose_device(
    choice: BackendChoice,
    host: &mut impl Host,
) -> Result<ChosenDevice, String> {
    let cpu = |reason: String| ChosenDevice {
        device: Device::flex().autodiff(),
        backend: "cpu".into(),
        reason,
    };
    if choice == BackendChoice::Cpu {
        return Ok(cpu("the CPU backend was chosen".into()));
    }
    let support = host.webgpu().await;
    let unusable = match (&support, choice) {
        (WebGpuSupport::Missing { reason }, _) => Some(reason.clone()),
        (WebGpuSupport::Software { adapter }, BackendChoice::Auto) => Some(format!(
            "the only WebGPU adapter is a software renderer ({adapter}), slower than the CPU \
             backend (choose WebGPU to use it anyway)"
        )),
        _ => None,
    };
    let (gpu, label) = match unusable {
        Some(reason) => (Err(reason), "WebGPU".to_string()),
        None => {
            let Gpu {
                backend,
                label,
                device,
            } = host.gpu().await;
            (device.map(|device| (device, backend)), label)
        }
    };
    match (gpu, choice) {
        (Ok((device, backend)), _) => Ok(ChosenDevice {
            device,
            backend,
            reason: match support {
                WebGpuSupport::Software { adapter } => {
                    format!("{label} was chosen; its adapter is a software renderer ({adapter})")
                }
                WebGpuSupport::Hardware { adapter }
                | WebGpuSupport::Missing { reason: adapter } => {
                    format!("{label} is available ({adapter})")
                }
            },
        }),
        (Err(reason), BackendChoice::Webgpu) => Err(format!("{label} was chosen but {reason}")),
        (Err(reason), _) => Ok(cpu(reason)),
    }
}

/// The current model, trained here or loaded from a file.
struct CurrentModel {
    model: SiameseNet,
    device: Device,
    /// Its input shape and threshold among the rest.
    info: ModelInfo,
}

/// Labelled training images of the trained classes and their embeddings under the current
/// model, searched by neighbour queries, and their classes' prototypes; the model's test part
/// and its embeddings, which Evaluate and ExportProjector take instead of embedding it again;
/// and the sample of test images the analysis classifies. Cleared whenever the model or the
/// data change.
struct Reference {
    set: ImageSet,
    embeddings: Embeddings,
    trained_prototypes: Prototypes,
    test_part: TestPart,
    test: Embeddings,
    /// Indices of the classified test images, and their embeddings.
    queries: Vec<usize>,
    query_embeddings: Embeddings,
    default_unknown_distance: f32,
}

/// The user's files arriving in batches.
struct FileLoad {
    images: LabelledImages,
    total: usize,
}

#[derive(Default)]
struct State {
    dataset: Option<Rc<Dataset>>,
    file_load: Option<FileLoad>,
    model: Option<Rc<CurrentModel>>,
    reference: Option<Rc<Reference>>,
    /// A run or a benchmark holds the data and the device.
    busy: bool,
    /// Counts changes of the model or the data: an analysis begun before one is stale.
    generation: u64,
}

#[derive(Default)]
pub struct Session {
    state: RefCell<State>,
    stop: Cell<bool>,
}

/// Why a command failed, said to the front end as an `error` reply; `fatal` when the worker
/// cannot go on (its GPU device failed).
struct Failure {
    message: String,
    fatal: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            fatal: false,
        }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

type Outcome = Result<(), Failure>;

/// Clears `busy` however the run ends.
struct BusyGuard<'a>(&'a Session);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.state.borrow_mut().busy = false;
    }
}

impl Session {
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one command; its replies, the error included, go to `host`. Commands may overlap
    /// (a Stop or a comparison arrives while a run trains): no state is borrowed across an await.
    pub async fn handle(&self, command: Command, host: &mut impl Host) {
        if let Err(Failure { message, fatal }) = self.dispatch(command, host).await {
            host.send(Reply::Error { message, fatal });
        }
    }

    async fn dispatch(&self, command: Command, host: &mut impl Host) -> Outcome {
        let changes_data_or_model = !matches!(
            command,
            Command::Stop
                | Command::SplitList { .. }
                | Command::Compare { .. }
                | Command::Neighbours { .. }
                | Command::SaveModel
                | Command::Evaluate
                | Command::ExportProjector
                | Command::ExportProjectorArchive
        );
        if changes_data_or_model {
            self.refuse_while_busy()?;
        }
        match command {
            Command::Stop => {
                self.stop.set(true);
                Ok(())
            }
            Command::UseMnist {
                url,
                train_images,
                test_images,
            } => {
                let bytes = host.fetch(&url).await.map_err(|err| {
                    Failure::from(format!("cannot load the MNIST digits from {url}: {err}"))
                })?;
                let digits = parse_mnist(&bytes)?;
                let dataset = Dataset::mnist(&digits, train_images, test_images);
                self.use_dataset(dataset, Vec::new(), Vec::new(), host)
                    .await
            }
            Command::BeginFiles {
                total,
                channels,
                height,
                width,
            } => self.begin_files(total, ImageShape::new(channels, height, width), host),
            Command::AddFiles { files } => self.add_files(files, host),
            Command::EndFiles => self.end_files(host).await,
            Command::Train { settings } => self.train(&settings, host).await,
            Command::Compare { left, right } => self.compare(left, right, host).await,
            Command::Neighbours { query, k } => self.neighbours(query, k, host).await,
            Command::SaveModel => self.save_model(host).await,
            Command::Evaluate => self.evaluate(host).await,
            Command::ExportProjector => {
                let files = self.projector_files(host).await?;
                host.send(Reply::Projector(files));
                Ok(())
            }
            Command::ExportProjectorArchive => {
                let files = self.projector_files(host).await?;
                host.send(Reply::ProjectorArchive {
                    file_name: "siamese-web-projector.zip".into(),
                    bytes: projector_archive(&files),
                });
                Ok(())
            }
            Command::LoadModel { file_name, bytes } => {
                self.load_model(&file_name, &bytes, host).await
            }
            Command::SplitList { settings } => self.split_list(settings.as_ref(), host),
            Command::Benchmark { backend, job } => self.benchmark(backend, &job, host).await,
            Command::Enrol { class_name, images } => {
                self.enrol_images(class_name, images, host).await
            }
            Command::EnrolHeldOut { images_per_class } => {
                self.enrol_held_out(images_per_class, host).await
            }
            Command::SetUnknownDistance { distance } => self.set_unknown_distance(distance, host),
        }
    }

    fn dataset(&self) -> Result<Rc<Dataset>, Failure> {
        self.state
            .borrow()
            .dataset
            .clone()
            .ok_or_else(|| "choose data first: the MNIST digits or your own images".into())
    }

    fn current_model(&self) -> Option<Rc<CurrentModel>> {
        self.state.borrow().model.clone()
    }

    fn generation(&self) -> u64 {
        self.state.borrow().generation
    }

    fn refuse_while_busy(&self) -> Outcome {
        if self.state.borrow().busy {
            return Err("training is running: stop it first".into());
        }
        Ok(())
    }

    fn begin_busy(&self) -> BusyGuard<'_> {
        self.state.borrow_mut().busy = true;
        self.stop.set(false);
        BusyGuard(self)
    }

    /// Makes `dataset` the data; a model already here of its image size is put to work on it.
    async fn use_dataset(
        &self,
        dataset: Dataset,
        file_errors: Vec<String>,
        file_notes: Vec<String>,
        host: &mut impl Host,
    ) -> Outcome {
        // Checked again here: a run may have started while the data was fetched or read.
        self.refuse_while_busy()?;
        host.send(Reply::DatasetLoaded(
            dataset.summary(file_errors, file_notes),
        ));
        {
            let mut state = self.state.borrow_mut();
            state.dataset = Some(Rc::new(dataset));
            state.reference = None;
            state.generation += 1;
        }
        self.analyse(None, Vec::new(), host).await
    }

    fn begin_files(&self, total: usize, shape: ImageShape, host: &mut impl Host) -> Outcome {
        if !matches!(shape.channels, 1 | 3) {
            return Err(format!(
                "images must have 1 (grey) or 3 (RGB) channels, not {}",
                shape.channels
            )
            .into());
        }
        SiameseNetConfig::for_shape(shape).feature_map_size()?;
        let store = host.pixel_store(shape)?;
        self.state.borrow_mut().file_load = Some(FileLoad {
            images: LabelledImages::with_store(shape, store),
            total,
        });
        host.send(Reply::FilesRead {
            done: 0,
            total,
            keys: Vec::new(),
        });
        Ok(())
    }

    fn add_files(&self, files: Vec<UploadedFile>, host: &mut impl Host) -> Outcome {
        let mut state = self.state.borrow_mut();
        let load = state
            .file_load
            .as_mut()
            .ok_or("files arrived without a load begun: drop them again")?;
        let labelled: Vec<LabelledFile> = files
            .iter()
            .map(|file| {
                let key = file.key.as_deref().map(str::parse).transpose();
                Ok(LabelledFile {
                    class_name: &file.class_name,
                    file_name: &file.file_name,
                    bytes: &file.bytes,
                    group: file.group.as_deref(),
                    key: key.map_err(|err| format!("{}: {err}", file.file_name))?,
                })
            })
            .collect::<Result<_, String>>()?;
        let keys = load.images.add_all(&labelled);
        let (done, total) = (load.images.files_read(), load.total);
        drop(state);
        host.send(Reply::FilesRead {
            done,
            total,
            keys: keys
                .into_iter()
                .map(|key| key.map(|key| key.to_string()))
                .collect(),
        });
        Ok(())
    }

    async fn end_files(&self, host: &mut impl Host) -> Outcome {
        let load = self
            .state
            .borrow_mut()
            .file_load
            .take()
            .ok_or("files arrived without a load begun: drop them again")?;
        let files = load.images.files_read();
        let (set, errors, notes) = load.images.finish();
        let errors = errors.iter().map(ToString::to_string).collect();
        self.use_dataset(Dataset::uploaded(set, files), errors, notes, host)
            .await
    }

    async fn train(&self, settings: &RunSettings, host: &mut impl Host) -> Outcome {
        let Run {
            config,
            backend: choice,
            workers,
        } = settings
            .resolve()
            .map_err(|err| format!("invalid settings: {err}"))?;
        let dataset = self.dataset()?;
        let data = TrainingData::split(&dataset.train, &config).map_err(|e| e.to_string())?;
        let busy = self.begin_busy();
        #[cfg(not(target_arch = "wasm32"))]
        let burn_train = host.burn_train().await?;
        #[cfg(not(target_arch = "wasm32"))]
        let chosen = match &burn_train {
            Some(run) => ChosenDevice {
                device: run.devices[0].clone(),
                backend: run.label.clone(),
                reason: format!(
                    "burn-train's engine on {}",
                    if run.devices.len() == 1 {
                        "one device".to_string()
                    } else {
                        format!(
                            "{} devices, each with its share of every batch",
                            run.devices.len()
                        )
                    }
                ),
            },
            None => choose_device(choice, host).await?,
        };
        #[cfg(target_arch = "wasm32")]
        let chosen = choose_device(choice, host).await?;
        // Helpers share the batches of the session's own loop; burn-train has its devices.
        #[cfg(not(target_arch = "wasm32"))]
        let own_loop = burn_train.is_none();
        #[cfg(target_arch = "wasm32")]
        let own_loop = true;
        let mut helpers = match own_loop && chosen.backend == "cpu" && workers > 1 {
            true => Some(host.helpers(workers - 1).await),
            false => None,
        };
        let workers = 1 + helpers.as_mut().map_or(0, BatchHelpers::count);
        let reason = match workers {
            1 => chosen.reason.clone(),
            n => format!(
                "{}; {n} workers, each with its share of every batch",
                chosen.reason
            ),
        };
        host.send(Reply::Backend {
            backend: chosen.backend.clone(),
            reason,
        });
        let device = chosen.device;
        // Burn keeps a failed GPU device for the process's lifetime: only a new worker can
        // train again, so the error is fatal there and the front end starts one.
        let failed = |err: TrainError| match err {
            TrainError::Backend(message)
                if !chosen.backend.split(',').all(|name| name == "cpu") =>
            {
                Failure {
                    message: format!("the GPU stopped working during training ({message})"),
                    fatal: true,
                }
            }
            other => Failure::from(other.to_string()),
        };
        // What the model will have seen, and so the test part it is measured on.
        let seen_images = dataset.training_images(config.held_out());
        let test = dataset.test_part(Some(&seen_images), config.held_out());
        let map_images = test.images.subset(&map_indices(test.images.len()));
        let mut observer = SessionObserver {
            host: &mut *host,
            stop: &self.stop,
            map_images: &map_images,
            device: &device,
            frames: Vec::new(),
        };
        let mut own_loop = async |observer: &mut SessionObserver<'_, _>| match helpers.as_mut() {
            Some(helpers) => train_sharing(&data, &config, &device, helpers, observer).await,
            None => train(&data, &config, &device, observer).await,
        };
        #[cfg(not(target_arch = "wasm32"))]
        let trained = match &burn_train {
            Some(run) => train_with_burn(&data, &config, run, &mut observer).await,
            None => own_loop(&mut observer).await,
        };
        #[cfg(target_arch = "wasm32")]
        let trained = own_loop(&mut observer).await;
        drop(helpers); // their memory is not kept past the run
        let frames = std::mem::take(&mut observer.frames);
        let trained = trained.map_err(failed)?;

        let (threshold_set, threshold_pairs, threshold_source) = data.threshold_pairs();
        let threshold_distances =
            pair_distances(&trained.model, threshold_set, &threshold_pairs, &device)
                .await
                .map_err(failed)?;
        let threshold_flags = dissimilar_flags(&threshold_pairs);
        let test_embeddings = embed_images(&trained.model, &test.images, &device)
            .await
            .map_err(failed)?;
        let (evaluation, gallery) = match &test.pairs {
            Ok(pairs) => {
                let distances = test_embeddings.pair_distances(pairs);
                let evaluation = Evaluation::new(
                    (&threshold_distances, &threshold_flags),
                    &distances,
                    &dissimilar_flags(pairs),
                );
                let gallery = gallery(&test.images, pairs, &distances, evaluation.best_threshold);
                (Some(evaluation), gallery)
            }
            Err(_) => (None, Vec::new()),
        };
        let threshold = evaluation.as_ref().map_or_else(
            || best_threshold(&threshold_distances, &threshold_flags).0,
            |e| e.best_threshold,
        );
        let info = ModelInfo {
            shape: dataset.train.shape,
            embedding_size: trained.model_config.embedding_size,
            class_names: dataset.train.class_names.clone(),
            threshold,
            threshold_source: Some(threshold_source),
            config: config.clone(),
            dataset: dataset.name.clone(),
            epochs_trained: trained.history.len(),
            test_acc: evaluation.as_ref().map(|e| e.test_acc_best),
            enrolled: Vec::new(),
            unknown_distance: None,
            seen_images: Some(seen_images),
        };
        let result = RunResult {
            backend: chosen.backend,
            epochs: trained.history.len(),
            test_pairs: test.pair_count(),
            test_pairs_similar: test.similar_pairs(),
            test_acc: evaluation.as_ref().map(|e| e.test_acc),
            best_threshold: threshold,
            threshold_source,
            test_acc_best: evaluation.as_ref().map(|e| e.test_acc_best),
            auc: evaluation.as_ref().map(|e| e.auc),
            pairs_per_s: trained.pairs_per_s,
            train_s: trained.train_s,
            workers,
        };
        self.set_model(CurrentModel {
            model: trained.model,
            device,
            info,
        });
        host.send(Reply::Done(RunReport {
            result,
            evaluation,
            gallery,
            stopped: trained.stopped,
            interrupted: trained.interrupted.map(|failure| {
                format!(
                    "{failure}; the model after epoch {} is kept",
                    trained.history.len()
                )
            }),
            note: test.no_pairs_reason(),
        }));
        drop(busy); // the analysis may be overtaken by a new run or new data
        self.analyse(Some((test, test_embeddings)), frames, host)
            .await
    }

    /// The same model with other info (an enrolled class, an unknown distance): its
    /// embeddings, and so the analysis, stay valid.
    fn replace_info(&self, current: &CurrentModel, info: ModelInfo) {
        self.state.borrow_mut().model = Some(Rc::new(CurrentModel {
            model: current.model.clone(),
            device: current.device.clone(),
            info,
        }));
    }

    fn set_model(&self, model: CurrentModel) {
        let mut state = self.state.borrow_mut();
        state.model = Some(Rc::new(model));
        state.reference = None;
        state.generation += 1;
    }

    /// Embeds the data under the current model and reports classification accuracy and the
    /// map; keeps training images' embeddings for neighbour searches. `test` is the model's
    /// test part and its embeddings when a run has just computed them. Does nothing without
    /// both a model and data of its input size, and drops its result when the model or the data
    /// changed meanwhile.
    async fn analyse(
        &self,
        test: Option<(TestPart, Embeddings)>,
        frames: Vec<(usize, Embeddings)>,
        host: &mut impl Host,
    ) -> Outcome {
        let generation = self.generation();
        let (model, dataset) = {
            let state = self.state.borrow();
            (state.model.clone(), state.dataset.clone())
        };
        let (Some(current), Some(dataset)) = (model, dataset) else {
            return Ok(());
        };
        if dataset.train.shape != current.info.shape {
            return Ok(());
        }
        let failed = |err: TrainError| Failure::from(format!("could not analyse the model: {err}"));
        let held_out = current.info.config.held_out();
        let (test_part, test) = match test {
            Some(given) => given,
            None => {
                let part = dataset.test_part(current.info.seen_images.as_ref(), held_out);
                let embedded = embed_images(&current.model, &part.images, &current.device)
                    .await
                    .map_err(failed)?;
                (part, embedded)
            }
        };
        host.yield_now().await;
        // The model has not seen the held-out classes: they are no reference for anything.
        let reference_set = stratified_sample(
            dataset.train.without_classes(held_out),
            Some(ANALYSIS_IMAGES),
        );
        let reference = embed_images(&current.model, &reference_set, &current.device)
            .await
            .map_err(failed)?;
        host.yield_now().await;
        // The images the run validated on (the same split, from the model's settings): it did
        // not train on them, so the default unknown distance is chosen on them.
        let validation = match TrainingData::split(&dataset.train, &current.info.config) {
            Ok(data) if !data.validation.is_empty() => {
                let sample = stratified_sample(data.validation, Some(VALIDATION_IMAGES));
                Some(
                    embed_images(&current.model, &sample, &current.device)
                        .await
                        .map_err(failed)?,
                )
            }
            _ => None,
        };
        host.yield_now().await;
        if self.generation() != generation {
            return Ok(()); // a newer model or data came meanwhile, with an analysis of its own
        }
        let threshold = current.info.threshold;
        let test_images = &test_part.images;
        let queries = sample_indices(test.len(), ANALYSIS_IMAGES);
        let query_embeddings = test.subset(&queries);
        // k-NN and one-shot classify among the trained classes, so only their images.
        let trained_queries: Vec<usize> = (0..queries.len())
            .filter(|&row| {
                !held_out.contains(&test_images.class_names[query_embeddings.labels[row]])
            })
            .collect();
        let classification = (!trained_queries.is_empty()).then(|| {
            classify(
                &reference,
                &query_embeddings.subset(&trained_queries),
                SPLIT_SEED,
            )
        });
        let pca = Pca2::fit(&query_embeddings);
        let projected = pca.project(&query_embeddings);
        let map = queries
            .iter()
            .zip(&projected)
            .take(MAP_POINTS)
            .map(|(&i, point)| MapPoint {
                x: point[0],
                y: point[1],
                label: test_images.labels()[i],
                thumbnail: small_thumbnail(test_images, i, MAP_THUMBNAIL_SIDE),
            })
            .collect();
        // On the final map's axes, the same images in the same order (`map_indices`).
        let map_over_time = frames
            .iter()
            .map(|(epoch, embeddings)| MapFrame {
                epoch: *epoch,
                points: pca.project(embeddings),
            })
            .collect();
        let hardest = hardest_pairs(&query_embeddings, HARDEST_PAIRS);
        let hard_pairs = |pairs: Vec<(usize, usize, f32)>| -> Vec<HardPair> {
            let class = |row: usize| test_images.class_names[query_embeddings.labels[row]].clone();
            pairs
                .into_iter()
                .map(|(left, right, distance)| HardPair {
                    left: thumbnail(test_images, queries[left]),
                    right: thumbnail(test_images, queries[right]),
                    left_class: class(left),
                    right_class: class(right),
                    distance,
                })
                .collect()
        };
        let closest_dissimilar = hard_pairs(hardest.closest_dissimilar);
        let farthest_similar = hard_pairs(hardest.farthest_similar);
        let note = match &classification {
            Some(_) => test_part.no_pairs_reason(),
            None if !test_images.is_empty() => Some(
                "the test part holds images of the held-out classes only, so no classification \
                 figures are shown: add images to the trained classes"
                    .to_string(),
            ),
            None if test_part.seen_left_out > Some(0) => Some(
                "the model trained or validated on every test image of this data, so no test \
                 figures are shown: train again on it"
                    .to_string(),
            ),
            None => Some(
                "no images are held out for the test, so no classification figures are shown: \
                 add more images to each class"
                    .to_string(),
            ),
        };
        let trained_prototypes =
            Prototypes::of_classes(&reference, &reference_set.class_names, held_out);
        let default_unknown_distance = default_unknown_distance(
            &trained_prototypes,
            validation.as_ref().unwrap_or(&reference),
            &reference_set.class_names,
            threshold,
        );
        let seen = current.info.seen_images.as_ref();
        let report = AnalysisReport {
            pair_acc: test_part
                .pairs
                .as_ref()
                .ok()
                .map(|pairs| pair_accuracy(&test, pairs, threshold)),
            test_pairs: test_part.pair_count(),
            test_pairs_similar: test_part.similar_pairs(),
            seen_images_left_out: test_part.seen_left_out,
            training_data_changed: seen.map(|seen| *seen != dataset.training_images(held_out)),
            threshold,
            knn_k: KNN_K,
            knn_acc: classification.as_ref().map(|c| c.knn_acc),
            one_shot_ways: classification.as_ref().map_or(0, |c| c.one_shot_ways),
            one_shot_acc: classification.as_ref().map(|c| c.one_shot_acc),
            reference_images: reference_set.len(),
            test_images: trained_queries.len(),
            class_names: test_images.class_names.clone(),
            map,
            map_over_time,
            open_set: None,
            closest_dissimilar,
            farthest_similar,
            note,
        };
        let analysed = Reference {
            trained_prototypes,
            default_unknown_distance,
            set: reference_set,
            embeddings: reference,
            test_part,
            test,
            queries,
            query_embeddings,
        };
        host.send(Reply::Analysis(AnalysisReport {
            open_set: analysed.open_set(&current.info)?,
            ..report
        }));
        if current.info.unknown_distance.is_none() {
            // Kept in the model from now on, and in its file.
            let mut info = current.info.clone();
            info.unknown_distance = Some(default_unknown_distance);
            self.replace_info(&current, info);
        }
        self.state.borrow_mut().reference = Some(Rc::new(analysed));
        Ok(())
    }

    /// Pixels of an image a front end points at, one of the test set or a file it sends, and
    /// the image's key.
    fn resolve_image(
        &self,
        image: ImageRef,
        shape: ImageShape,
    ) -> Result<(Vec<f32>, ImageKey), Failure> {
        match image {
            ImageRef::Test { index } => {
                let dataset = self.dataset()?;
                if index >= dataset.test.len() || dataset.test.shape != shape {
                    return Err(format!("there is no test image {index} for this model").into());
                }
                Ok((dataset.test.image(index), dataset.test.origins()[index].key))
            }
            ImageRef::File { file_name, bytes } => {
                decode_keyed_image(&file_name, &bytes, shape).map_err(|e| e.to_string().into())
            }
        }
    }

    async fn compare(&self, left: ImageRef, right: ImageRef, host: &mut impl Host) -> Outcome {
        let current = self
            .current_model()
            .ok_or("train a model first, then compare images")?;
        let shape = current.info.shape;
        let mut pair_set = ImageSet::new(shape, vec!["compared".into()]);
        let mut keys = Vec::new();
        for image in [left, right] {
            let (pixels, key) = self.resolve_image(image, shape)?;
            pair_set.push(&pixels, 0);
            keys.push(key);
        }
        let seen = |row: usize| {
            let seen = current.info.seen_images.as_ref();
            seen.map(|seen| seen.contains(keys[row]))
        };
        let pair = Pair {
            left: 0,
            right: 1,
            dissimilar: false,
        };
        let embedded = embed_images(&current.model, &pair_set, &current.device)
            .await
            .map_err(|e| e.to_string())?;
        let distance = embedded.pair_distances(&[pair])[0];
        let recognised = |row: usize| self.recognise(&current.info, embedded.row(row));
        host.send(Reply::Compared {
            distance,
            threshold: current.info.threshold,
            dissimilar: distance > current.info.threshold,
            left: thumbnail(&pair_set, 0),
            right: thumbnail(&pair_set, 1),
            left_recognised: recognised(0)?,
            right_recognised: recognised(1)?,
            left_seen: seen(0),
            right_seen: seen(1),
        });
        Ok(())
    }

    async fn neighbours(&self, query: ImageRef, k: usize, host: &mut impl Host) -> Outcome {
        let current = self.current_model().ok_or("train or load a model first")?;
        let reference = self
            .state
            .borrow()
            .reference
            .clone()
            .ok_or("load data of the model's image size to search for neighbours")?;
        let mut query_set = ImageSet::new(current.info.shape, vec!["query".into()]);
        query_set.push(&self.resolve_image(query, current.info.shape)?.0, 0);
        let embedded = embed_images(&current.model, &query_set, &current.device)
            .await
            .map_err(|e| e.to_string())?;
        let class_name =
            |index: usize| reference.set.class_names[reference.set.labels()[index]].clone();
        let found = reference
            .embeddings
            .nearest(embedded.row(0), k.clamp(1, 100));
        host.send(Reply::Neighbours {
            query: thumbnail(&query_set, 0),
            predicted_class: reference
                .embeddings
                .knn_class(embedded.row(0), KNN_K)
                .map(|c| reference.set.class_names[c].clone()),
            recognised: self.recognise(&current.info, embedded.row(0))?,
            neighbours: found
                .into_iter()
                .map(|(index, distance)| Neighbour {
                    thumbnail: thumbnail(&reference.set, index),
                    class_name: class_name(index),
                    distance,
                })
                .collect(),
        });
        Ok(())
    }

    /// The current model and the loaded data, when the model takes the data's images.
    fn model_and_data(&self) -> Result<(Rc<CurrentModel>, Rc<Dataset>), Failure> {
        let current = self.current_model().ok_or("train or load a model first")?;
        let dataset = self.dataset()?;
        if dataset.train.shape != current.info.shape {
            return Err(shape_mismatch(current.info.shape, dataset.train.shape).into());
        }
        Ok((current, dataset))
    }

    /// The current model's test part and its embeddings: the analysis's, or new ones.
    async fn test_part(
        &self,
        current: &CurrentModel,
        dataset: &Dataset,
    ) -> Result<(TestPart, Embeddings), Failure> {
        let analysed = self.state.borrow().reference.clone();
        if let Some(reference) = analysed {
            return Ok((reference.test_part.clone(), reference.test.clone()));
        }
        let part = dataset.test_part(
            current.info.seen_images.as_ref(),
            current.info.config.held_out(),
        );
        let embedded = embed_images(&current.model, &part.images, &current.device)
            .await
            .map_err(|e| e.to_string())?;
        Ok((part, embedded))
    }

    async fn evaluate(&self, host: &mut impl Host) -> Outcome {
        let (current, dataset) = self.model_and_data()?;
        let (test_part, test) = self.test_part(&current, &dataset).await?;
        let evaluation = test_part.pairs.as_ref().ok().map(|pairs| {
            Evaluation::at_threshold(
                current.info.threshold,
                &test.pair_distances(pairs),
                &dissimilar_flags(pairs),
            )
        });
        host.send(Reply::Evaluated {
            test_pairs: test_part.pair_count(),
            test_pairs_similar: test_part.similar_pairs(),
            seen_images_left_out: test_part.seen_left_out,
            evaluation,
            note: test_part.no_pairs_reason(),
        });
        Ok(())
    }

    /// Every loaded image's embedding as the Embedding Projector's files: the training part,
    /// the test part, then the test images the model trained on (its file says which).
    async fn projector_files(&self, host: &mut impl Host) -> Result<ProjectorFiles, Failure> {
        let (current, dataset) = self.model_and_data()?;
        let embed = async |set: &ImageSet| {
            embed_images(&current.model, set, &current.device)
                .await
                .map_err(|e| Failure::from(e.to_string()))
        };
        let train = embed(&dataset.train).await?;
        host.yield_now().await;
        let (test_part, test) = self.test_part(&current, &dataset).await?;
        let seen = seen_test_images(&dataset, &current.info);
        let seen_embedded = embed(&seen).await?;
        let parts = [
            EmbeddedPart {
                name: "train",
                set: &dataset.train,
                embeddings: &train,
            },
            EmbeddedPart {
                name: "test",
                set: &test_part.images,
                embeddings: &test,
            },
            EmbeddedPart {
                name: "seen",
                set: &seen,
                embeddings: &seen_embedded,
            },
        ];
        Ok(projector_files(&parts))
    }

    /// The split of the loaded data as `path<TAB>class<TAB>part` lines (see [`Reply::SplitList`]).
    fn split_list(&self, settings: Option<&RunSettings>, host: &mut impl Host) -> Outcome {
        let dataset = self.dataset()?;
        let current = self.current_model();
        let model = current
            .as_ref()
            .filter(|current| current.info.shape == dataset.train.shape);
        let config = match settings {
            Some(settings) => {
                let run = settings.resolve();
                run.map_err(|err| format!("invalid settings: {err}"))?
                    .config
            }
            None => model.map_or_else(TrainConfig::new, |current| current.info.config.clone()),
        };
        let data = TrainingData::split(&dataset.train, &config).map_err(|e| e.to_string())?;
        let seen = model.map_or_else(
            || ImageSet::new(dataset.test.shape, dataset.test.class_names.clone()),
            |current| seen_test_images(&dataset, &current.info),
        );
        let held_out_part = dataset.train.subset(
            &(0..dataset.train.len())
                .filter(|&i| {
                    config
                        .held_out()
                        .contains(&dataset.train.class_names[dataset.train.labels()[i]])
                })
                .collect::<Vec<_>>(),
        );
        let seen_keys = SeenImages::of(&seen);
        let test: Vec<usize> = (0..dataset.test.len())
            .filter(|&i| !seen_keys.contains(dataset.test.origins()[i].key))
            .collect();
        let parts = [
            ("train", &data.train),
            ("validation", &data.validation),
            ("held-out", &held_out_part),
            ("test", &dataset.test.subset(&test)),
            ("seen", &seen),
        ];
        let mut tsv = String::from("path\tclass\tpart\n");
        for (part, set) in parts {
            for (index, origin) in set.origins().iter().enumerate() {
                // A tab or a line break in a name would break the table's rows.
                let field = |text: &str| text.replace(['\t', '\n', '\r'], " ");
                let path = field(origin.file_name.as_deref().unwrap_or(""));
                let class = field(&set.class_names[set.labels()[index]]);
                tsv.push_str(&format!("{path}\t{class}\t{part}\n"));
            }
        }
        host.send(Reply::SplitList {
            file_name: "siamese-web-split.tsv".into(),
            tsv,
        });
        Ok(())
    }

    async fn save_model(&self, host: &mut impl Host) -> Outcome {
        let current = self.current_model().ok_or("train a model first")?;
        let bytes = save_model(&current.model, &current.info)
            .await
            .map_err(|e| e.to_string())?;
        let slug: String = current
            .info
            .dataset
            .chars()
            .take_while(|c| *c != '(')
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let file_name = format!(
            "siamese-{}-{}ep.{MODEL_FILE_EXTENSION}",
            slug.trim_matches('-'),
            current.info.epochs_trained
        );
        host.send(Reply::ModelFile {
            file_name,
            bytes,
            info: current.info.clone(),
        });
        Ok(())
    }

    /// Makes the model in `bytes` the current one, on the CPU (inference is quick there), unless
    /// it cannot serve the loaded data; the current model stays on any refusal.
    async fn load_model(&self, file_name: &str, bytes: &[u8], host: &mut impl Host) -> Outcome {
        let device = Device::flex();
        let (model, info) =
            load_model(bytes, &device).map_err(|err| format!("{file_name}: {err}"))?;
        if let Some(dataset) = self.state.borrow().dataset.as_ref()
            && dataset.train.shape != info.shape
        {
            return Err(format!(
                "{file_name}: {}; the current model is kept",
                shape_mismatch(info.shape, dataset.train.shape)
            )
            .into());
        }
        self.set_model(CurrentModel {
            model,
            device,
            info: info.clone(),
        });
        host.send(Reply::ModelLoaded {
            file_name: file_name.into(),
            info,
        });
        self.analyse(None, Vec::new(), host).await
    }

    async fn benchmark(
        &self,
        choice: BackendChoice,
        job: &BenchmarkJob,
        host: &mut impl Host,
    ) -> Outcome {
        let dataset = self.dataset()?;
        let _busy = self.begin_busy();
        let chosen = choose_device(choice, host).await?;
        let device = &chosen.device;
        let result = run_benchmark(&dataset.train, job, &chosen.backend, device, &mut NoHelpers)
            .await
            .map_err(|e| e.to_string())?;
        host.send(Reply::Benchmark(result));
        Ok(())
    }
}

/// The test images on the map: the first of those the analysis classifies.
fn map_indices(test_images: usize) -> Vec<usize> {
    let mut indices = sample_indices(test_images, ANALYSIS_IMAGES);
    indices.truncate(MAP_POINTS);
    indices
}

/// Passes a run's progress to the host, yields after every batch, and stops on request; keeps
/// the map's images' embeddings before training and after each epoch.
struct SessionObserver<'a, H: Host> {
    host: &'a mut H,
    stop: &'a Cell<bool>,
    map_images: &'a ImageSet,
    device: &'a Device,
    frames: Vec<(usize, Embeddings)>,
}

impl<H: Host> SessionObserver<'_, H> {
    fn control(&self) -> Control {
        if self.stop.get() {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

impl<H: Host> TrainObserver for SessionObserver<'_, H> {
    async fn on_batch(&mut self, progress: &BatchProgress) -> Control {
        self.host.send(Reply::Progress(progress.clone()));
        self.host.yield_now().await;
        self.control()
    }

    async fn on_epoch(&mut self, summary: &EpochSummary) -> Control {
        self.host.send(Reply::Epoch {
            summary: summary.clone(),
            memory_bytes: self.host.memory_bytes(),
        });
        self.control()
    }

    async fn on_model(&mut self, epoch: usize, model: &SiameseNet) -> Result<(), TrainError> {
        let embeddings = embed_images(model, self.map_images, self.device).await?;
        self.frames.push((epoch, embeddings));
        self.host.yield_now().await;
        Ok(())
    }
}

/// The first test pairs with their distances, as the front ends show them.
fn gallery(set: &ImageSet, pairs: &[Pair], distances: &[f32], threshold: f32) -> Vec<GalleryPair> {
    pairs
        .iter()
        .zip(distances)
        .take(GALLERY_PAIRS)
        .map(|(pair, &distance)| GalleryPair {
            left: thumbnail(set, pair.left),
            right: thumbnail(set, pair.right),
            distance,
            dissimilar: pair.dissimilar,
            predicted_dissimilar: distance > threshold,
        })
        .collect()
}

/// The test images of `dataset` that the model of `info` trained or validated on.
fn seen_test_images(dataset: &Dataset, info: &ModelInfo) -> ImageSet {
    let seen: Vec<usize> = (0..dataset.test.len())
        .filter(|&i| {
            let seen = info.seen_images.as_ref();
            seen.is_some_and(|seen| seen.contains(dataset.test.origins()[i].key))
        })
        .collect();
    dataset.test.subset(&seen)
}

fn shape_mismatch(model: ImageShape, data: ImageShape) -> String {
    format!(
        "this model was trained for {} images, but the loaded data is {}",
        describe_shape(model),
        describe_shape(data)
    )
}

fn describe_shape(shape: ImageShape) -> String {
    let colour = if shape.channels == 1 { "grey" } else { "RGB" };
    format!("{}x{} {colour}", shape.width, shape.height)
}
