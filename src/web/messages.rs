//! Every message between the page and the training worker, in one place. They cross the
//! boundary as plain JS objects through serde-wasm-bindgen; `type` names the variant.

use serde::{Deserialize, Serialize};

use crate::evaluation::Evaluation;
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
    /// Load the user's files; one class per `class_name`.
    UseFiles {
        files: Vec<UploadedFile>,
        channels: usize,
        height: usize,
        width: usize,
    },
    Train {
        config: TrainConfig,
        backend: BackendChoice,
    },
    /// Stop training after the current batch; the model so far is kept and evaluated.
    Stop,
    /// Distance between two images under the trained model.
    Compare { left: ImageRef, right: ImageRef },
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
    /// The worker's wasm is loaded and it takes messages.
    Ready,
    DatasetLoaded(DatasetSummary),
    /// Which backend a run uses, and why.
    Backend {
        backend: String,
        reason: String,
    },
    Progress(BatchProgress),
    Epoch(EpochSummary),
    Done(RunReport),
    Compared {
        distance: f32,
        threshold: f32,
        dissimilar: bool,
        left: Thumbnail,
        right: Thumbnail,
    },
    /// Something the user must know; `fatal` when the worker cannot go on (a panic).
    Error {
        message: String,
        fatal: bool,
    },
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
pub struct GalleryPair {
    pub left: Thumbnail,
    pub right: Thumbnail,
    pub distance: f32,
    pub dissimilar: bool,
    pub predicted_dissimilar: bool,
}
