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
use crate::data::images::{LabelledFile, decode_image, load_labelled_files};
use crate::data::mnist::{mnist_train_test, parse_mnist};
use crate::data::{ImageSet, ImageShape};
use crate::model::SiameseNet;
use crate::pairs::{Pair, PairSampler};
use crate::training::{
    BatchProgress, Control, EpochSummary, TrainConfig, TrainObserver, TrainingData, evaluate,
    pair_distances, train,
};

/// Test images held out of the built-in digits (the article's 8,000 / 2,000 split).
const MNIST_TEST_IMAGES: usize = 2000;
/// Fraction of each class of uploaded images held out for the test.
const UPLOAD_TEST_SPLIT: f64 = 0.2;
/// Seed of the train/test split, fixed so runs with different training seeds test alike.
const SPLIT_SEED: u64 = 1;
const THUMBNAILS_PER_CLASS: usize = 4;
const GALLERY_PAIRS: usize = 12;

struct Dataset {
    name: String,
    train: ImageSet,
    test: ImageSet,
}

struct Predictor {
    model: SiameseNet,
    threshold: f32,
    device: Device,
    shape: ImageShape,
}

#[derive(Default)]
struct WorkerState {
    dataset: Option<Rc<Dataset>>,
    predictor: Option<Rc<Predictor>>,
    stop: Rc<Cell<bool>>,
    training: bool,
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
    post(&WorkerOutput::Ready);
}

fn handle(input: WorkerInput) {
    let training = STATE.with_borrow(|state| state.training);
    match input {
        WorkerInput::Stop => STATE.with_borrow(|state| state.stop.set(true)),
        WorkerInput::UseMnist { .. } | WorkerInput::UseFiles { .. } | WorkerInput::Train { .. }
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
                Ok(dataset) => use_dataset(dataset, Vec::new()),
                Err(message) => post_error(message),
            }
        }),
        WorkerInput::UseFiles {
            files,
            channels,
            height,
            width,
        } => load_files(files, ImageShape::new(channels, height, width)),
        WorkerInput::Train { config, backend } => start_training(config, backend),
        WorkerInput::Compare { left, right } => spawn_local(async move {
            if let Err(message) = compare(left, right).await {
                post_error(message);
            }
        }),
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

fn load_files(files: Vec<UploadedFile>, shape: ImageShape) {
    let (set, errors) = load_labelled_files(
        files.iter().map(|file| LabelledFile {
            class_name: &file.class_name,
            file_name: &file.file_name,
            bytes: &file.bytes,
        }),
        shape,
    );
    let (train, test) = set.split(UPLOAD_TEST_SPLIT, SPLIT_SEED);
    let errors = errors.iter().map(ToString::to_string).collect();
    use_dataset(
        Dataset {
            name: format!("your images ({} files)", files.len()),
            train,
            test,
        },
        errors,
    );
}

fn use_dataset(dataset: Dataset, file_errors: Vec<String>) {
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
    post(&WorkerOutput::DatasetLoaded(DatasetSummary {
        name: dataset.name.clone(),
        channels: shape.channels,
        height: shape.height,
        width: shape.width,
        train_images: dataset.train.len(),
        test_images: dataset.test.len(),
        classes,
        file_errors,
        problem,
    }));
    STATE.with_borrow_mut(|state| state.dataset = Some(Rc::new(dataset)));
}

fn thumbnail(set: &ImageSet, index: usize) -> Thumbnail {
    let shape = set.shape;
    let plane = shape.height * shape.width;
    let image = set.image(index);
    let channel = |c: usize, p: usize| (image[c.min(shape.channels - 1) * plane + p] * 255.0) as u8;
    let rgba = (0..plane)
        .flat_map(|p| [channel(0, p), channel(1, p), channel(2, p), 255])
        .collect();
    Thumbnail {
        width: shape.width,
        height: shape.height,
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
            Ok(report) => post(&WorkerOutput::Done(report)),
            Err(message) => post_error(message),
        }
    });
}

/// Picks the device: WebGPU when asked or when `auto` finds an adapter, else the CPU.
async fn choose_device(choice: BackendChoice) -> Result<(Device, &'static str, String), String> {
    let cpu = || Device::flex().autodiff();
    if choice == BackendChoice::Cpu {
        return Ok((cpu(), "cpu", "the CPU backend was chosen".into()));
    }
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or_default();
    let has_webgpu = Reflect::get(&navigator, &"gpu".into()).is_ok_and(|gpu| !gpu.is_undefined());
    let webgpu = if has_webgpu {
        training_device(Backend::Wgpu).await
    } else {
        Err("this browser has no WebGPU (navigator.gpu is missing)".into())
    };
    match (webgpu, choice) {
        (Ok(device), _) => Ok((device, "webgpu", "a WebGPU adapter is available".into())),
        (Err(reason), BackendChoice::Webgpu) => Err(format!("WebGPU was chosen but {reason}")),
        (Err(reason), _) => Ok((cpu(), "cpu", format!("{reason}; training on the CPU"))),
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
        post(&WorkerOutput::Epoch(summary.clone()));
        if self.stop.get() {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

/// Lets the worker handle queued messages (a Stop) before the next batch.
async fn yield_to_event_loop() {
    let promise = Promise::new(&mut |resolve, _| {
        let _ = scope().set_timeout_with_callback(&resolve);
    });
    let _ = JsFuture::from(promise).await;
}

async fn run_training(
    dataset: &Dataset,
    config: &TrainConfig,
    choice: BackendChoice,
    stop: Rc<Cell<bool>>,
) -> Result<RunReport, String> {
    let data = TrainingData::split(&dataset.train, config).map_err(|e| e.to_string())?;
    let (device, backend, reason) = choose_device(choice).await?;
    post(&WorkerOutput::Backend {
        backend: backend.into(),
        reason,
    });
    let trained = train(&data, config, &device, &mut WorkerObserver { stop })
        .await
        .map_err(|e| e.to_string())?;
    // A tiny upload may leave too few test images to pair: then the whole set is evaluated.
    let test_pairable = PairSampler::new(dataset.test.labels(), &dataset.test.class_names).is_ok();
    let (test_set, note) = if test_pairable {
        (&dataset.test, None)
    } else {
        (
            &dataset.train,
            Some("too few images to hold out a test part: figures are on training images".into()),
        )
    };
    let (evaluation, test_pairs, test_distances) =
        evaluate(&trained, &data, test_set, config.seed, &device)
            .await
            .map_err(|e| e.to_string())?;
    let gallery = gallery(
        test_set,
        &test_pairs,
        &test_distances,
        evaluation.best_threshold,
    );
    STATE.with_borrow_mut(|state| {
        state.predictor = Some(Rc::new(Predictor {
            model: trained.model.clone(),
            threshold: evaluation.best_threshold,
            device: device.clone(),
            shape: dataset.train.shape,
        }))
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
    let (predictor, dataset) = STATE.with_borrow(|s| (s.predictor.clone(), s.dataset.clone()));
    let predictor = predictor.ok_or("train a model first, then compare images")?;
    let mut pair_set = ImageSet::new(predictor.shape, vec!["compared".into()]);
    for image in [left, right] {
        let pixels = match image {
            ImageRef::Test { index } => {
                let test = &dataset.as_ref().ok_or("no data is loaded")?.test;
                if index >= test.len() || test.shape != predictor.shape {
                    return Err(format!("there is no test image {index} for this model"));
                }
                test.image(index).to_vec()
            }
            ImageRef::File { file_name, bytes } => {
                decode_image(&file_name, &bytes, predictor.shape).map_err(|e| e.to_string())?
            }
        };
        pair_set.push(&pixels, 0);
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
        threshold: predictor.threshold,
        dissimilar: distance > predictor.threshold,
        left: thumbnail(&pair_set, 0),
        right: thumbnail(&pair_set, 1),
    });
    Ok(())
}
