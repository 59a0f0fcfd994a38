//! The training worker: holds the data and the trained model, answers [`WorkerInput`]s with
//! [`WorkerOutput`]s, and yields to the worker's event loop after every batch so Stop arrives.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use burn::tensor::Device;
use js_sys::{Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent, Response};

use super::messages::*;
use crate::backend::{Backend, training_device};
use crate::benchmark::{BenchmarkJob, BenchmarkResult, run_benchmark};
use crate::data::images::{LabelledFile, LabelledImages, decode_image};
use crate::data::mnist::{mnist_train_test, parse_mnist};
use crate::data::{ImageSet, ImageShape};
use crate::embeddings::{Embeddings, pca_2d};
use crate::model::SiameseNet;
use crate::model_file::{MODEL_FILE_EXTENSION, ModelInfo, load_model, save_model};
use crate::pairs::{Pair, PairSampler};
use crate::rng::SeededRng;
use crate::training::{
    BatchProgress, Control, EpochSummary, KNN_K, TrainConfig, TrainError, TrainObserver,
    TrainingData, analyse, embed_images, evaluate, pair_distances, train,
};

/// Test images held out of the built-in digits (the article's 8,000 / 2,000 split).
const MNIST_TEST_IMAGES: usize = 2000;
/// Fraction of each class of uploaded images held out for the test.
const UPLOAD_TEST_SPLIT: f64 = 0.2;
/// Seed of the train/test split, fixed so runs with different training seeds test alike.
const SPLIT_SEED: u64 = 1;
const THUMBNAILS_PER_CLASS: usize = 4;
const GALLERY_PAIRS: usize = 12;
/// At most this many training images serve as the labelled examples of k-NN, one-shot and
/// neighbour searches, and this many test images are classified: enough for a stable figure,
/// few enough to embed in seconds on the CPU.
const ANALYSIS_IMAGES: usize = 2000;
/// Points on the embedding map, and the largest side of their thumbnails.
const MAP_POINTS: usize = 500;
const MAP_THUMBNAIL_SIDE: usize = 32;

struct Dataset {
    name: String,
    train: ImageSet,
    test: ImageSet,
}

impl Dataset {
    /// The test part, or the training part when a tiny upload leaves too few test images to
    /// make both kinds of pair.
    fn evaluation_set(&self) -> &ImageSet {
        match PairSampler::new(self.test.labels(), &self.test.class_names) {
            Ok(_) => &self.test,
            Err(_) => &self.train,
        }
    }
}

/// The current model, trained here or loaded from a file.
struct Predictor {
    model: SiameseNet,
    device: Device,
    /// Its input shape and threshold among the rest.
    info: ModelInfo,
}

/// Labelled training images and their embeddings under the current model, searched by
/// neighbour queries.
struct Reference {
    set: ImageSet,
    embeddings: Embeddings,
}

/// The user's files arriving in batches.
struct FileLoad {
    images: LabelledImages,
    total: usize,
}

#[derive(Default)]
struct WorkerState {
    dataset: Option<Rc<Dataset>>,
    file_load: Option<FileLoad>,
    predictor: Option<Rc<Predictor>>,
    reference: Option<Rc<Reference>>,
    stop: Rc<Cell<bool>>,
    training: bool,
    webgpu: Option<WebGpuSupport>,
}

thread_local! {
    static STATE: RefCell<WorkerState> = RefCell::default();
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(output: &WorkerOutput) {
    let serializer = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
    match serde::Serialize::serialize(output, &serializer) {
        Ok(value) => {
            if let Err(err) = scope().post_message(&value) {
                web_sys::console::error_2(&"siamese-web: postMessage failed".into(), &err);
            }
        }
        Err(err) => web_sys::console::error_1(&format!("siamese-web: {err}").into()),
    }
}

fn post_error(message: impl Into<String>) {
    post(&WorkerOutput::Error {
        message: message.into(),
        fatal: false,
    });
}

/// Starts the worker: reports panics to the page, listens for messages, says it is ready.
#[wasm_bindgen(js_name = startWorker)]
pub fn start_worker() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&info.to_string().into());
        post(&WorkerOutput::Error {
            message: format!("internal error, the worker must restart: {info}"),
            fatal: true,
        });
    }));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        match serde_wasm_bindgen::from_value::<WorkerInput>(event.data()) {
            Ok(input) => handle(input),
            Err(err) => post_error(format!("unreadable message from the page: {err}")),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget(); // lives as long as the worker
    spawn_local(async {
        let webgpu = probe_webgpu().await;
        STATE.with_borrow_mut(|state| state.webgpu = Some(webgpu.clone()));
        post(&WorkerOutput::Ready { webgpu });
    });
}

/// Asks the browser for a WebGPU adapter and tells a real GPU from a software fallback.
async fn probe_webgpu() -> WebGpuSupport {
    let field = |object: &JsValue, name: &str| Reflect::get(object, &name.into()).ok();
    let missing = |reason: &str| WebGpuSupport::Missing {
        reason: reason.into(),
    };
    let navigator = field(&js_sys::global(), "navigator").unwrap_or_default();
    let Some(gpu) = field(&navigator, "gpu").filter(|gpu| !gpu.is_undefined()) else {
        return missing("this browser has no WebGPU (navigator.gpu is missing)");
    };
    let request = field(&gpu, "requestAdapter").and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    let promise = request.and_then(|f| f.call0(&gpu).ok()?.dyn_into::<Promise>().ok());
    let adapter = match promise {
        Some(promise) => JsFuture::from(promise).await.unwrap_or(JsValue::NULL),
        None => JsValue::NULL,
    };
    if adapter.is_null() || adapter.is_undefined() {
        return missing("the browser offers no WebGPU adapter");
    }
    let info = field(&adapter, "info").unwrap_or_default();
    let text = |name: &str| {
        field(&info, name)
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let name = [text("vendor"), text("architecture"), text("description")]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    // `isFallbackAdapter` moved from the adapter to its info; older browsers have only the first.
    let fallback = [
        field(&info, "isFallbackAdapter"),
        field(&adapter, "isFallbackAdapter"),
    ]
    .iter()
    .any(|flag| flag.as_ref().and_then(JsValue::as_bool) == Some(true));
    if fallback || name.to_lowercase().contains("swiftshader") {
        WebGpuSupport::Software { adapter: name }
    } else {
        WebGpuSupport::Hardware { adapter: name }
    }
}

fn handle(input: WorkerInput) {
    let training = STATE.with_borrow(|state| state.training);
    match input {
        WorkerInput::Stop => STATE.with_borrow(|state| state.stop.set(true)),
        WorkerInput::UseMnist { .. }
        | WorkerInput::BeginFiles { .. }
        | WorkerInput::AddFiles { .. }
        | WorkerInput::EndFiles
        | WorkerInput::Train { .. }
        | WorkerInput::LoadModel { .. }
        | WorkerInput::Benchmark { .. }
            if training =>
        {
            post_error("training is running: stop it first")
        }
        WorkerInput::UseMnist {
            url,
            train_images,
            test_images,
        } => spawn_local(async move {
            match load_mnist(&url, train_images, test_images).await {
                Ok(dataset) => use_dataset(dataset, Vec::new(), Vec::new()),
                Err(message) => post_error(message),
            }
        }),
        WorkerInput::BeginFiles {
            total,
            channels,
            height,
            width,
        } => STATE.with_borrow_mut(|state| {
            state.file_load = Some(FileLoad {
                images: LabelledImages::new(ImageShape::new(channels, height, width)),
                total,
            })
        }),
        WorkerInput::AddFiles { files } => add_files(files),
        WorkerInput::EndFiles => end_files(),
        WorkerInput::Train { config, backend } => start_training(config, backend),
        WorkerInput::Compare { left, right } => spawn_local(async move {
            if let Err(message) = compare(left, right).await {
                post_error(message);
            }
        }),
        WorkerInput::Neighbours { query, k } => spawn_local(async move {
            if let Err(message) = neighbours(query, k).await {
                post_error(message);
            }
        }),
        WorkerInput::SaveModel => spawn_local(async {
            if let Err(message) = save_current_model().await {
                post_error(message);
            }
        }),
        WorkerInput::Benchmark { backend, job } => {
            let Some(dataset) = STATE.with_borrow(|state| state.dataset.clone()) else {
                post_error("choose data first: the MNIST digits or your own images");
                return;
            };
            STATE.with_borrow_mut(|state| state.training = true);
            spawn_local(async move {
                let outcome = benchmark(&dataset, backend, &job).await;
                STATE.with_borrow_mut(|state| state.training = false);
                match outcome {
                    Ok(result) => post(&WorkerOutput::Benchmark(result)),
                    Err(message) => post_error(message),
                }
            });
        }
        WorkerInput::LoadModel { file_name, bytes } => match load_model_file(&file_name, &bytes) {
            Ok(info) => {
                post(&WorkerOutput::ModelLoaded { file_name, info });
                spawn_local(analyse_current_model());
            }
            Err(message) => post_error(message),
        },
    }
}

async fn load_mnist(
    url: &str,
    train_images: Option<usize>,
    test_images: Option<usize>,
) -> Result<Dataset, String> {
    let fetch_failed = |err: JsValue| format!("cannot load the MNIST digits from {url}: {err:?}");
    let response: Response = JsFuture::from(scope().fetch_with_str(url))
        .await
        .map_err(fetch_failed)?
        .unchecked_into();
    if !response.ok() {
        return Err(format!(
            "cannot load the MNIST digits from {url}: HTTP {}",
            response.status()
        ));
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(fetch_failed)?)
        .await
        .map_err(fetch_failed)?;
    let digits = parse_mnist(&Uint8Array::new(&buffer).to_vec())?;
    let (train, test) = mnist_train_test(&digits, MNIST_TEST_IMAGES, SPLIT_SEED);
    Ok(Dataset {
        name: "MNIST digits".into(),
        train: stratified_sample(train, train_images),
        test: stratified_sample(test, test_images),
    })
}

/// About `wanted` images of `set`, each class in its share; the whole set when None or larger.
fn stratified_sample(set: ImageSet, wanted: Option<usize>) -> ImageSet {
    match wanted {
        Some(wanted) if wanted < set.len() => {
            set.split(wanted as f64 / set.len() as f64, SPLIT_SEED).1
        }
        _ => set,
    }
}

fn add_files(files: Vec<UploadedFile>) {
    let progress = STATE.with_borrow_mut(|state| {
        let load = state.file_load.as_mut()?;
        for file in &files {
            load.images.add(LabelledFile {
                class_name: &file.class_name,
                file_name: &file.file_name,
                bytes: &file.bytes,
            });
        }
        Some((load.images.files_read(), load.total))
    });
    match progress {
        Some((done, total)) => post(&WorkerOutput::FilesRead { done, total }),
        None => post_error("files arrived without a load begun: drop them again"),
    }
}

fn end_files() {
    let Some(load) = STATE.with_borrow_mut(|state| state.file_load.take()) else {
        return post_error("files arrived without a load begun: drop them again");
    };
    let files = load.images.files_read();
    let (set, errors, notes) = load.images.finish();
    let (train, test) = set.split(UPLOAD_TEST_SPLIT, SPLIT_SEED);
    use_dataset(
        Dataset {
            name: format!("your images ({files} files)"),
            train,
            test,
        },
        errors.iter().map(ToString::to_string).collect(),
        notes,
    );
}

fn use_dataset(dataset: Dataset, file_errors: Vec<String>, file_notes: Vec<String>) {
    let shape = dataset.train.shape;
    let whole_labels: Vec<usize> = dataset
        .train
        .labels()
        .iter()
        .chain(dataset.test.labels())
        .copied()
        .collect();
    let problem = PairSampler::new(&whole_labels, &dataset.train.class_names)
        .err()
        .map(|err| err.to_string());
    let classes = dataset
        .train
        .class_names
        .iter()
        .enumerate()
        .map(|(class, name)| {
            let members = |set: &ImageSet| set.labels().iter().filter(|&&l| l == class).count();
            ClassSummary {
                name: name.clone(),
                count: members(&dataset.train) + members(&dataset.test),
                thumbnails: (0..dataset.train.len())
                    .filter(|&i| dataset.train.labels()[i] == class)
                    .take(THUMBNAILS_PER_CLASS)
                    .map(|i| thumbnail(&dataset.train, i))
                    .collect(),
            }
        })
        .collect();
    let summary = DatasetSummary {
        name: dataset.name.clone(),
        channels: shape.channels,
        height: shape.height,
        width: shape.width,
        train_images: dataset.train.len(),
        test_images: dataset.test.len(),
        classes,
        file_errors,
        file_notes,
        problem,
    };
    post(&WorkerOutput::DatasetLoaded(summary));
    STATE.with_borrow_mut(|state| {
        state.dataset = Some(Rc::new(dataset));
        state.reference = None;
    });
    // A model already here (a loaded one) is put to work on the new data at once.
    spawn_local(analyse_current_model());
}

fn thumbnail(set: &ImageSet, index: usize) -> Thumbnail {
    small_thumbnail(set, index, usize::MAX)
}

/// The image as RGBA, shrunk (nearest pixel) so neither side exceeds `max_side`.
fn small_thumbnail(set: &ImageSet, index: usize, max_side: usize) -> Thumbnail {
    let shape = set.shape;
    let step = shape.height.max(shape.width).div_ceil(max_side).max(1);
    let (height, width) = (shape.height.div_ceil(step), shape.width.div_ceil(step));
    let plane = shape.height * shape.width;
    let image = set.image(index);
    let channel = |c: usize, p: usize| (image[c.min(shape.channels - 1) * plane + p] * 255.0) as u8;
    let rgba = (0..height * width)
        .map(|i| (i / width * step) * shape.width + (i % width) * step)
        .flat_map(|p| [channel(0, p), channel(1, p), channel(2, p), 255])
        .collect();
    Thumbnail {
        width,
        height,
        rgba,
    }
}

fn start_training(config: TrainConfig, choice: BackendChoice) {
    let Some(dataset) = STATE.with_borrow(|state| state.dataset.clone()) else {
        post_error("choose data first: the MNIST digits or your own images");
        return;
    };
    let stop = STATE.with_borrow_mut(|state| {
        state.training = true;
        state.stop.set(false);
        state.stop.clone()
    });
    spawn_local(async move {
        let outcome = run_training(&dataset, &config, choice, stop).await;
        STATE.with_borrow_mut(|state| state.training = false);
        match outcome {
            Ok(report) => {
                post(&WorkerOutput::Done(report));
                analyse_current_model().await;
            }
            Err(RunError::Refused(message)) => post_error(message),
            // Burn keeps the failed device for the worker's lifetime: only a new worker can
            // train again, so the page is told to start one.
            Err(RunError::GpuFailed(message)) => post(&WorkerOutput::Error {
                message: format!("the GPU stopped working during training ({message})"),
                fatal: true,
            }),
        }
    });
}

/// Picks the device: WebGPU when asked, or for `auto` when the adapter is a real GPU; else the
/// CPU, saying why.
async fn choose_device(choice: BackendChoice) -> Result<(Device, &'static str, String), String> {
    let cpu = || Device::flex().autodiff();
    if choice == BackendChoice::Cpu {
        return Ok((cpu(), "cpu", "the CPU backend was chosen".into()));
    }
    let support = match STATE.with_borrow(|state| state.webgpu.clone()) {
        Some(support) => support,
        None => probe_webgpu().await,
    };
    let unusable = match (&support, choice) {
        (WebGpuSupport::Missing { reason }, _) => Some(reason.clone()),
        (WebGpuSupport::Software { adapter }, BackendChoice::Auto) => Some(format!(
            "the only WebGPU adapter is a software renderer ({adapter}), slower than the CPU \
             backend (choose WebGPU to use it anyway)"
        )),
        _ => None,
    };
    let webgpu = match unusable {
        Some(reason) => Err(reason),
        None => training_device(Backend::Wgpu).await,
    };
    match (webgpu, choice) {
        (Ok(device), _) => Ok((device, "webgpu", webgpu_reason(&support))),
        (Err(reason), BackendChoice::Webgpu) => Err(format!("WebGPU was chosen but {reason}")),
        (Err(reason), _) => Ok((cpu(), "cpu", reason)),
    }
}

fn webgpu_reason(support: &WebGpuSupport) -> String {
    match support {
        WebGpuSupport::Hardware { adapter } => format!("a WebGPU adapter is available ({adapter})"),
        WebGpuSupport::Software { adapter } => {
            format!("WebGPU was chosen; its adapter is a software renderer ({adapter})")
        }
        WebGpuSupport::Missing { reason } => reason.clone(),
    }
}

struct WorkerObserver {
    stop: Rc<Cell<bool>>,
}

impl TrainObserver for WorkerObserver {
    async fn on_batch(&mut self, progress: &BatchProgress) -> Control {
        post(&WorkerOutput::Progress(progress.clone()));
        yield_to_event_loop().await;
        if self.stop.get() {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    async fn on_epoch(&mut self, summary: &EpochSummary) -> Control {
        post(&WorkerOutput::Epoch {
            summary: summary.clone(),
            memory_bytes: wasm_memory_bytes(),
        });
        if self.stop.get() {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

fn wasm_memory_bytes() -> f64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    memory
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}

/// Lets the worker handle queued messages (a Stop) before the next batch.
async fn yield_to_event_loop() {
    let promise = Promise::new(&mut |resolve, _| {
        let _ = scope().set_timeout_with_callback(&resolve);
    });
    let _ = JsFuture::from(promise).await;
}

/// Why a run ended without a model.
enum RunError {
    /// The settings, the data or the training itself (a divergence): said to the user.
    Refused(String),
    /// The WebGPU device failed (lost, reset, out of memory) while in use.
    GpuFailed(String),
}

async fn run_training(
    dataset: &Dataset,
    config: &TrainConfig,
    choice: BackendChoice,
    stop: Rc<Cell<bool>>,
) -> Result<RunReport, RunError> {
    let data = TrainingData::split(&dataset.train, config)
        .map_err(|e| RunError::Refused(e.to_string()))?;
    let (device, backend, reason) = choose_device(choice).await.map_err(RunError::Refused)?;
    post(&WorkerOutput::Backend {
        backend: backend.into(),
        reason,
    });
    let failed = |err: TrainError| match err {
        TrainError::Backend(message) if backend == "webgpu" => RunError::GpuFailed(message),
        other => RunError::Refused(other.to_string()),
    };
    let trained = train(&data, config, &device, &mut WorkerObserver { stop })
        .await
        .map_err(failed)?;
    let test_set = dataset.evaluation_set();
    let note = (!std::ptr::eq(test_set, &dataset.test))
        .then(|| "too few images to hold out a test part: figures are on training images".into());
    let (evaluation, test_pairs, test_distances) =
        evaluate(&trained, &data, test_set, config.seed, &device)
            .await
            .map_err(failed)?;
    let gallery = gallery(
        test_set,
        &test_pairs,
        &test_distances,
        evaluation.best_threshold,
    );
    let info = ModelInfo {
        shape: dataset.train.shape,
        embedding_size: trained.model_config.embedding_size,
        class_names: dataset.train.class_names.clone(),
        threshold: evaluation.best_threshold,
        config: config.clone(),
        dataset: dataset.name.clone(),
        epochs_trained: trained.history.len(),
        test_acc: evaluation.test_acc_best,
    };
    STATE.with_borrow_mut(|state| {
        state.predictor = Some(Rc::new(Predictor {
            model: trained.model.clone(),
            device: device.clone(),
            info,
        }));
        state.reference = None;
    });
    Ok(RunReport {
        result: RunResult {
            backend: backend.into(),
            epochs: trained.history.len(),
            test_acc: evaluation.test_acc,
            best_threshold: evaluation.best_threshold,
            test_acc_best: evaluation.test_acc_best,
            auc: evaluation.auc,
            pairs_per_s: trained.pairs_per_s,
            train_s: trained.train_s,
        },
        evaluation,
        gallery,
        stopped: trained.stopped,
        interrupted: trained.interrupted.map(|failure| {
            format!(
                "{failure}; the model after epoch {} is kept",
                trained.history.len()
            )
        }),
        note,
    })
}

/// The first test pairs with their distances, as the page shows them.
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

async fn compare(left: ImageRef, right: ImageRef) -> Result<(), String> {
    let predictor = STATE.with_borrow(|s| s.predictor.clone());
    let predictor = predictor.ok_or("train a model first, then compare images")?;
    let mut pair_set = ImageSet::new(predictor.info.shape, vec!["compared".into()]);
    for image in [left, right] {
        pair_set.push(&resolve_image(image, predictor.info.shape)?, 0);
    }
    let pair = Pair {
        left: 0,
        right: 1,
        dissimilar: false,
    };
    let distance = pair_distances(&predictor.model, &pair_set, &[pair], &predictor.device)
        .await
        .map_err(|e| e.to_string())?[0];
    post(&WorkerOutput::Compared {
        distance,
        threshold: predictor.info.threshold,
        dissimilar: distance > predictor.info.threshold,
        left: thumbnail(&pair_set, 0),
        right: thumbnail(&pair_set, 1),
    });
    Ok(())
}

/// Embeds the data under the current model and reports classification accuracy and the map;
/// keeps the training images' embeddings for neighbour searches. Does nothing without both a
/// model and data of its input size.
async fn analyse_current_model() {
    if let Err(message) = try_analyse_current_model().await {
        post_error(format!("could not analyse the model: {message}"));
    }
}

async fn try_analyse_current_model() -> Result<(), String> {
    let (predictor, dataset) = STATE.with_borrow(|s| (s.predictor.clone(), s.dataset.clone()));
    let (Some(predictor), Some(dataset)) = (predictor, dataset) else {
        return Ok(());
    };
    if dataset.train.shape != predictor.info.shape {
        return Ok(());
    }
    let reference_set = stratified_sample(dataset.train.clone(), Some(ANALYSIS_IMAGES));
    let test_set = stratified_sample(dataset.evaluation_set().clone(), Some(ANALYSIS_IMAGES));
    let analysis = analyse(
        &predictor.model,
        predictor.info.threshold,
        &reference_set,
        &test_set,
        SPLIT_SEED,
        &predictor.device,
    )
    .await
    .map_err(|e| e.to_string())?;
    // The map shows a random sample of the test images; PCA is fitted on all of them.
    let projected = pca_2d(&analysis.test);
    let mut shown: Vec<usize> = (0..test_set.len()).collect();
    SeededRng::new(SPLIT_SEED).shuffle(&mut shown);
    shown.truncate(MAP_POINTS);
    let map = shown
        .into_iter()
        .map(|i| MapPoint {
            x: projected[i][0],
            y: projected[i][1],
            label: test_set.labels()[i],
            thumbnail: small_thumbnail(&test_set, i, MAP_THUMBNAIL_SIDE),
        })
        .collect();
    post(&WorkerOutput::Analysis(AnalysisReport {
        pair_acc: analysis.pair_acc,
        threshold: predictor.info.threshold,
        knn_k: KNN_K,
        knn_acc: analysis.knn_acc,
        one_shot_ways: analysis.one_shot_ways,
        one_shot_acc: analysis.one_shot_acc,
        reference_images: reference_set.len(),
        test_images: test_set.len(),
        class_names: test_set.class_names.clone(),
        map,
    }));
    STATE.with_borrow_mut(|state| {
        state.reference = Some(Rc::new(Reference {
            set: reference_set,
            embeddings: analysis.reference,
        }))
    });
    Ok(())
}

/// Pixels of an image the page points at: one of the test set, or a file it sends.
fn resolve_image(image: ImageRef, shape: ImageShape) -> Result<Vec<f32>, String> {
    match image {
        ImageRef::Test { index } => {
            let dataset = STATE.with_borrow(|s| s.dataset.clone());
            let test = &dataset.as_ref().ok_or("no data is loaded")?.test;
            if index >= test.len() || test.shape != shape {
                return Err(format!("there is no test image {index} for this model"));
            }
            Ok(test.image(index).to_vec())
        }
        ImageRef::File { file_name, bytes } => {
            decode_image(&file_name, &bytes, shape).map_err(|e| e.to_string())
        }
    }
}

async fn neighbours(query: ImageRef, k: usize) -> Result<(), String> {
    let (predictor, reference) = STATE.with_borrow(|s| (s.predictor.clone(), s.reference.clone()));
    let predictor = predictor.ok_or("train or load a model first")?;
    let reference =
        reference.ok_or("load data of the model's image size to search for neighbours")?;
    let mut query_set = ImageSet::new(predictor.info.shape, vec!["query".into()]);
    query_set.push(&resolve_image(query, predictor.info.shape)?, 0);
    let embedded = embed_images(&predictor.model, &query_set, &predictor.device)
        .await
        .map_err(|e| e.to_string())?;
    let class_name =
        |index: usize| reference.set.class_names[reference.set.labels()[index]].clone();
    let found = reference
        .embeddings
        .nearest(embedded.row(0), k.clamp(1, 100));
    post(&WorkerOutput::Neighbours {
        query: thumbnail(&query_set, 0),
        predicted_class: reference
            .embeddings
            .knn_class(embedded.row(0), KNN_K)
            .map(|c| reference.set.class_names[c].clone()),
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

async fn save_current_model() -> Result<(), String> {
    let predictor = STATE
        .with_borrow(|s| s.predictor.clone())
        .ok_or("train a model first")?;
    let bytes = save_model(&predictor.model, &predictor.info)
        .await
        .map_err(|e| e.to_string())?;
    let slug: String = predictor
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
        predictor.info.epochs_trained
    );
    post(&WorkerOutput::ModelFile {
        file_name,
        bytes,
        info: predictor.info.clone(),
    });
    Ok(())
}

/// Makes the model in `bytes` the current one, on the CPU (inference is quick there), unless it
/// cannot serve the loaded data; the current model stays on any refusal.
fn load_model_file(file_name: &str, bytes: &[u8]) -> Result<ModelInfo, String> {
    let device = Device::flex();
    let (model, info) = load_model(bytes, &device).map_err(|err| format!("{file_name}: {err}"))?;
    let dataset = STATE.with_borrow(|s| s.dataset.clone());
    if let Some(dataset) = dataset.filter(|d| d.train.shape != info.shape) {
        return Err(format!(
            "{file_name}: this model was trained for {} images, but the loaded data is {}; \
             the current model is kept",
            describe_shape(info.shape),
            describe_shape(dataset.train.shape)
        ));
    }
    STATE.with_borrow_mut(|state| {
        state.predictor = Some(Rc::new(Predictor {
            model,
            device,
            info: info.clone(),
        }));
        state.reference = None;
    });
    Ok(info)
}

fn describe_shape(shape: ImageShape) -> String {
    let colour = if shape.channels == 1 { "grey" } else { "RGB" };
    format!("{}x{} {colour}", shape.width, shape.height)
}

async fn benchmark(
    dataset: &Dataset,
    choice: BackendChoice,
    job: &BenchmarkJob,
) -> Result<BenchmarkResult, String> {
    let (device, backend, _) = choose_device(choice).await?;
    run_benchmark(&dataset.train, job, backend, &device)
        .await
        .map_err(|e| e.to_string())
}
