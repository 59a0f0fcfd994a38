//! Every message between the page and the training worker, in one place. They cross the
//! boundary as plain JS objects through serde-wasm-bindgen; `type` names the variant.

use serde::{Deserialize, Serialize};

use crate::benchmark::{BenchmarkJob, BenchmarkResult};
use crate::evaluation::Evaluation;
use crate::model_file::ModelInfo;
use crate::training::{BatchProgress, EpochSummary, TrainConfig};

/// What the page may ask for.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerInput {
    /// Load the built-in digits from this URL (the asset sits beside the app's files);
    /// `train_images` and `test_images` keep stratified samples of each part, for quick runs.
    UseMnist {
        url: String,
        train_images: Option<usize>,
        test_images: Option<usize>,
    },
    /// Start loading `total` of the user's files, which follow in `add_files` batches: each
    /// batch is decoded and dropped before the page reads the next, so memory stays bounded
    /// however many files there are. Replaces a load in progress.
    BeginFiles {
        total: usize,
        channels: usize,
        height: usize,
        width: usize,
    },
    /// The next files of the load; one class per `class_name`. Answered with `files_read`.
    AddFiles { files: Vec<UploadedFile> },
    /// All files were sent: the images become the data (answered with `dataset_loaded`).
    EndFiles,
    Train {
        config: TrainConfig,
        backend: BackendChoice,
    },
    /// Stop training after the current batch; the model so far is kept and evaluated.
    Stop,
    /// Distance between two images under the trained model.
    Compare { left: ImageRef, right: ImageRef },
    /// The `k` images of the training set nearest to a query image, under the current model.
    Neighbours { query: ImageRef, k: usize },
    /// The current model as a file (answered with `model_file`).
    SaveModel,
    /// Time the fixed speed job (PERFORMANCE.md) on the loaded data.
    Benchmark {
        backend: BackendChoice,
        job: BenchmarkJob,
    },
    /// Replace the current model with one from a file; refused (the current one kept) when the
    /// file is not a whole model of ours or was made for another input size than the data.
    LoadModel {
        file_name: String,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

#[derive(Debug, Deserialize)]
pub struct UploadedFile {
    pub class_name: String,
    pub file_name: String,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// WebGPU when the browser offers an adapter, else the CPU.
    Auto,
    Webgpu,
    Cpu,
}

/// An image of the test set, or a file the user picked.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageRef {
    Test {
        index: usize,
    },
    File {
        file_name: String,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

/// What the worker reports.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerOutput {
    /// The worker's wasm is loaded and it takes messages; says what WebGPU it found.
    Ready {
        webgpu: WebGpuSupport,
    },
    /// Progress of a load of the user's files, after each batch.
    FilesRead {
        done: usize,
        total: usize,
    },
    DatasetLoaded(DatasetSummary),
    /// Which backend a run uses, and why.
    Backend {
        backend: String,
        reason: String,
    },
    Progress(BatchProgress),
    Epoch {
        #[serde(flatten)]
        summary: EpochSummary,
        /// The worker's WebAssembly memory after the epoch: it must not grow epoch after epoch.
        memory_bytes: f64,
    },
    Done(RunReport),
    Compared {
        distance: f32,
        threshold: f32,
        dissimilar: bool,
        left: Thumbnail,
        right: Thumbnail,
    },
    /// What the current model's embeddings do on the loaded data; sent after training, after a
    /// model is loaded, and after data is loaded for an existing model.
    Analysis(AnalysisReport),
    Neighbours {
        query: Thumbnail,
        /// The class most of the nearest `knn_k` images have.
        predicted_class: Option<String>,
        neighbours: Vec<Neighbour>,
    },
    ModelFile {
        file_name: String,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        info: ModelInfo,
    },
    /// A model from a file is now the current one.
    ModelLoaded {
        file_name: String,
        info: ModelInfo,
    },
    Benchmark(BenchmarkResult),
    /// Something the user must know; `fatal` when the worker cannot go on (a panic).
    Error {
        message: String,
        fatal: bool,
    },
}

/// The WebGPU adapter the worker can use. A software one (SwiftShader, where a machine has no
/// usable GPU) trains ~20x slower than the CPU backend, so Auto skips it.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WebGpuSupport {
    Missing { reason: String },
    Software { adapter: String },
    Hardware { adapter: String },
}

#[derive(Debug, Serialize)]
pub struct DatasetSummary {
    pub name: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub train_images: usize,
    pub test_images: usize,
    pub classes: Vec<ClassSummary>,
    /// One line per file that could not be used, naming the file.
    pub file_errors: Vec<String>,
    /// One line per file used in part (the first frame of an animation), naming the file.
    pub file_notes: Vec<String>,
    /// Set when the data cannot train yet; says what to add.
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ClassSummary {
    pub name: String,
    pub count: usize,
    pub thumbnails: Vec<Thumbnail>,
}

/// An image as RGBA bytes, ready for `ImageData`.
#[derive(Debug, Serialize)]
pub struct Thumbnail {
    pub width: usize,
    pub height: usize,
    #[serde(with = "serde_bytes")]
    pub rgba: Vec<u8>,
}

/// The end of a run: the figures a page or test reads, and what the charts draw.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub result: RunResult,
    pub evaluation: Evaluation,
    pub gallery: Vec<GalleryPair>,
    pub stopped: bool,
    /// Why the run ended before its last epoch when the loss blew up: the model of the last
    /// good epoch is the one evaluated and kept.
    pub interrupted: Option<String>,
    /// Set when the test split was too small and another part stood in for it.
    pub note: Option<String>,
}

/// The figures of a run, also shown in `#result-json`.
#[derive(Debug, Serialize)]
pub struct RunResult {
    pub backend: String,
    pub epochs: usize,
    pub test_acc: f64,
    pub best_threshold: f32,
    pub test_acc_best: f64,
    pub auc: f64,
    pub pairs_per_s: f64,
    pub train_s: f64,
}

#[derive(Debug, Serialize)]
pub struct AnalysisReport {
    /// Test pair accuracy at `threshold`, the model's own.
    pub pair_acc: f64,
    pub threshold: f32,
    pub knn_k: usize,
    pub knn_acc: f64,
    pub one_shot_ways: usize,
    pub one_shot_acc: f64,
    /// Images the k-NN and one-shot classifiers drew their examples from (training images).
    pub reference_images: usize,
    pub test_images: usize,
    pub class_names: Vec<String>,
    /// Test images on the first two principal components of their embeddings.
    pub map: Vec<MapPoint>,
}

#[derive(Debug, Serialize)]
pub struct MapPoint {
    pub x: f32,
    pub y: f32,
    pub label: usize,
    pub thumbnail: Thumbnail,
}

#[derive(Debug, Serialize)]
pub struct Neighbour {
    pub thumbnail: Thumbnail,
    pub class_name: String,
    pub distance: f32,
}

#[derive(Debug, Serialize)]
pub struct GalleryPair {
    pub left: Thumbnail,
    pub right: Thumbnail,
    pub distance: f32,
    pub dissimilar: bool,
    pub predicted_dissimilar: bool,
}
