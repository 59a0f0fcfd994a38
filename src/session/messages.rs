//! Every message between a front end (the page, the widget, the command line) and the session,
//! in one place. In the browser they cross to the worker as plain JS objects through
//! serde-wasm-bindgen; `type` names the variant. Every request carries an `id` that each of its
//! replies echoes, so a front end pairs answers with questions and drops stale ones.

use serde::{Deserialize, Serialize};

use super::settings::RunSettings;
use crate::benchmark::{BenchmarkJob, BenchmarkResult};
use crate::evaluation::Evaluation;
use crate::model_file::ModelInfo;
use crate::open_set::{OperatingPoint, Recognition};
use crate::projector::ProjectorFiles;
use crate::training::{BatchProgress, EpochSummary, ThresholdSource, TrainConfig};

/// A command and the id its replies carry.
#[derive(Debug, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub command: Command,
}

/// A reply and the id of the request it answers.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    pub id: u64,
    #[serde(flatten)]
    pub reply: &'a Reply,
}

/// Images a class is enrolled from, at most.
pub const MAX_ENROL_IMAGES: usize = 20;

/// What a front end may ask for.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
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
    /// Train a new model with these settings, as given (each checked by the session, which
    /// names a bad one). `workers` on the CPU: the worker and that many less one helpers (Web
    /// Workers), each computing a share of every batch; absent or 1, the worker alone.
    Train { settings: RunSettings },
    /// Stop training after the current batch; the model so far is kept and evaluated.
    Stop,
    /// Distance between two images under the trained model.
    Compare { left: ImageRef, right: ImageRef },
    /// The `k` images of the training set nearest to a query image, under the current model.
    Neighbours { query: ImageRef, k: usize },
    /// The current model as a file (answered with `model_file`).
    SaveModel,
    /// The current model's figures on the loaded data's test pairs, at the model's own
    /// threshold (answered with `evaluated`).
    Evaluate,
    /// Every loaded image's embedding under the current model, training images then test
    /// images, as the Embedding Projector's files (answered with `projector`).
    ExportProjector,
    /// The same files as one zip archive, for a browser (answered with `projector_archive`).
    ExportProjectorArchive,
    /// Time the fixed speed job (PERFORMANCE.md) on the loaded data.
    Benchmark {
        backend: BackendChoice,
        job: BenchmarkJob,
    },
    /// Add a class to the current model from a few images (1 to [`MAX_ENROL_IMAGES`]), without
    /// retraining: their mean embedding becomes its prototype (answered with `open_set`).
    Enrol {
        class_name: String,
        images: Vec<ImageRef>,
    },
    /// Enrol each class held out of training from this many of its training images, the
    /// first in the data's seeded order: how well enrolment works, on classes never trained on.
    EnrolHeldOut { images_per_class: usize },
    /// The distance to the nearest class past which an image is none of the classes; kept in
    /// the model (answered with `open_set`).
    SetUnknownDistance { distance: f32 },
    /// Every image of the loaded data with its class and the part it is in (answered with
    /// `split_list`): the split of the data, the validation part of a run with `settings` (by
    /// default the current model's, else the article's), and which test images the current
    /// model trained on.
    SplitList { settings: Option<RunSettings> },
    /// Replace the current model with one from a file; refused (the current one kept) when the
    /// file is not a whole model of ours or was made for another input size than the data.
    LoadModel {
        file_name: String,
        #[serde(with = "serde_bytes")]
        #[cfg_attr(test, ts(type = "Uint8Array"))]
        bytes: Vec<u8>,
    },
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Debug, Deserialize)]
pub struct UploadedFile {
    pub class_name: String,
    pub file_name: String,
    #[serde(with = "serde_bytes")]
    #[cfg_attr(test, ts(type = "Uint8Array"))]
    pub bytes: Vec<u8>,
    /// Files of one group (the frames of one camera hold, the files of a group folder) go to
    /// one side of the split together.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub group: Option<String>,
    /// For a shrunk copy of an image (as the page keeps large ones), the key `files_read` gave
    /// the image it was made from: the copy keeps that image's place in the split and in the
    /// models that trained on it.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub key: Option<String>,
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// WebGPU when the browser offers an adapter, else the CPU.
    Auto,
    /// The host's GPU: WebGPU in a browser, the command line's `--device` natively.
    Webgpu,
    Cpu,
}

/// An image of the test set, or a file the user picked.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageRef {
    Test {
        index: usize,
    },
    File {
        file_name: String,
        #[serde(with = "serde_bytes")]
        #[cfg_attr(test, ts(type = "Uint8Array"))]
        bytes: Vec<u8>,
    },
}

/// What the session reports. A request's replies end with one that is not an event
/// ([`Reply::is_event`]): its answer or an `error`.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// The worker's wasm is loaded and it takes messages; says what WebGPU it found.
    Ready {
        webgpu: WebGpuSupport,
        /// Whether this module can train on WebGPU: the CPU-only module, which a browser
        /// without a real GPU loads, cannot (`www/worker.js`).
        webgpu_module: bool,
        /// The settings a run takes when the front end changes none: the article's.
        defaults: TrainConfig,
    },
    /// Progress of a load of the user's files, after each batch, with the key of each of the
    /// batch's files (a hash of its decoded pixels, 16 hexadecimal digits; null for a file that
    /// cannot be used).
    FilesRead {
        done: usize,
        total: usize,
        keys: Vec<Option<String>>,
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
        /// What each image is among the classes ("none of the above" past the model's unknown
        /// distance); None without data of the model's image size loaded.
        left_recognised: Option<Recognition>,
        right_recognised: Option<Recognition>,
        /// Whether the model trained on each image; None when its file does not say.
        left_seen: Option<bool>,
        right_seen: Option<bool>,
    },
    /// What the current model's embeddings do on the loaded data; sent after training, after a
    /// model is loaded, and after data is loaded for an existing model.
    Analysis(AnalysisReport),
    Neighbours {
        query: Thumbnail,
        /// The class most of the nearest `knn_k` images have.
        predicted_class: Option<String>,
        /// The class whose prototype is nearest, or none of the above.
        recognised: Option<Recognition>,
        neighbours: Vec<Neighbour>,
    },
    /// "None of the above" on the loaded data, after an enrolment or a new unknown distance.
    OpenSet(OpenSetReport),
    ModelFile {
        file_name: String,
        #[serde(with = "serde_bytes")]
        #[cfg_attr(test, ts(type = "Uint8Array"))]
        bytes: Vec<u8>,
        info: ModelInfo,
    },
    /// A model from a file is now the current one.
    ModelLoaded {
        file_name: String,
        info: ModelInfo,
    },
    Benchmark(BenchmarkResult),
    Evaluated {
        /// The test pairs every test figure is measured on.
        test_pairs: usize,
        /// Of them, pairs of one class (the rest are of two).
        test_pairs_similar: usize,
        /// Test images left out because the model trained on them; None when it does not say.
        seen_images_left_out: Option<usize>,
        /// None without test pairs (`note` says why).
        evaluation: Option<Evaluation>,
        note: Option<String>,
    },
    Projector(ProjectorFiles),
    /// `path<TAB>class<TAB>part` for every image, `part` being `train`, `validation`, `test`,
    /// `held-out` (the training part of a class held out of training) or `seen` (a test image
    /// the current model trained on, left out of its figures).
    SplitList {
        file_name: String,
        tsv: String,
    },
    ProjectorArchive {
        file_name: String,
        #[serde(with = "serde_bytes")]
        #[cfg_attr(test, ts(type = "Uint8Array"))]
        bytes: Vec<u8>,
    },
    /// Something the user must know; `fatal` when the worker cannot go on (a panic).
    Error {
        message: String,
        fatal: bool,
    },
}

impl Reply {
    /// Progress on the way to a request's answer: what the backend is, a batch, an epoch.
    /// `www/trainer.js` keeps the same list.
    pub fn is_event(&self) -> bool {
        matches!(
            self,
            Reply::Backend { .. } | Reply::Progress(_) | Reply::Epoch { .. }
        )
    }

    pub fn error(message: impl Into<String>) -> Self {
        Reply::Error {
            message: message.into(),
            fatal: false,
        }
    }
}

/// The WebGPU adapter the worker can use. A software one (SwiftShader, where a machine has no
/// usable GPU) trains ~20x slower than the CPU backend, so Auto skips it. `www/worker.js` probes
/// it before it picks the module to load.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WebGpuSupport {
    Missing { reason: String },
    Software { adapter: String },
    Hardware { adapter: String },
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct DatasetSummary {
    pub name: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub train_images: usize,
    pub test_images: usize,
    /// The groups of two images or more the split kept whole in each part: a camera hold, a
    /// group folder, or the copies of one image.
    pub train_groups: usize,
    pub test_groups: usize,
    /// The test pairs every test figure will be measured on; 0 when the test part cannot pair.
    pub test_pairs: usize,
    pub classes: Vec<ClassSummary>,
    /// One line per file that could not be used, naming the file.
    pub file_errors: Vec<String>,
    /// One line per file used in part (the first frame of an animation), naming the file.
    pub file_notes: Vec<String>,
    /// A warning for each image found under two classes or more, naming its files.
    pub duplicates: Vec<String>,
    /// Set when the data cannot train yet; says what to add.
    pub problem: Option<String>,
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct ClassSummary {
    pub name: String,
    pub count: usize,
    pub thumbnails: Vec<Thumbnail>,
}

/// An image as RGBA bytes, ready for `ImageData`.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct Thumbnail {
    pub width: usize,
    pub height: usize,
    #[serde(with = "serde_bytes")]
    #[cfg_attr(test, ts(type = "Uint8Array"))]
    pub rgba: Vec<u8>,
}

/// The end of a run: the figures a page or test reads, and what the charts draw.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub result: RunResult,
    /// None when the test part cannot make both kinds of pair (`note` says why).
    pub evaluation: Option<Evaluation>,
    pub gallery: Vec<GalleryPair>,
    pub stopped: bool,
    /// Why the run ended before its last epoch when the loss blew up: the model of the last
    /// good epoch is the one evaluated and kept.
    pub interrupted: Option<String>,
    /// Why figures are missing, when they are.
    pub note: Option<String>,
}

/// The figures of a run, also shown in `#result-json` and printed by the command line. The test
/// figures are None when there are no test pairs to measure them on.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct RunResult {
    pub backend: String,
    pub epochs: usize,
    /// The test pairs every test figure is measured on: half of them similar, drawn from the
    /// test images of the classes trained on.
    pub test_pairs: usize,
    /// Of them, pairs of one class.
    pub test_pairs_similar: usize,
    pub test_acc: Option<f64>,
    pub best_threshold: f32,
    /// Where `best_threshold` was chosen.
    pub threshold_source: ThresholdSource,
    pub test_acc_best: Option<f64>,
    pub auc: Option<f64>,
    pub pairs_per_s: f64,
    pub train_s: f64,
    /// The workers that trained, each with its share of every batch (1 on a GPU).
    pub workers: usize,
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct AnalysisReport {
    /// Test pair accuracy at `threshold`, the model's own, on the same test pairs as the run's
    /// figures; None without test pairs.
    pub pair_acc: Option<f64>,
    pub test_pairs: usize,
    pub test_pairs_similar: usize,
    /// Test images the model trained or validated on, left out of every figure here; None when
    /// its file does not say what it saw (then the figures may include such images).
    pub seen_images_left_out: Option<usize>,
    /// Whether the loaded data's training part differs from the images the model trained on
    /// (the data changed since, or the model came from other data); None when it does not say.
    pub training_data_changed: Option<bool>,
    pub threshold: f32,
    pub knn_k: usize,
    /// None without test images (`note` says why).
    pub knn_acc: Option<f64>,
    pub one_shot_ways: usize,
    pub one_shot_acc: Option<f64>,
    /// Images the k-NN and one-shot classifiers drew their examples from (training images).
    pub reference_images: usize,
    /// Test images classified (all of them, or a stratified sample of a large test part).
    pub test_images: usize,
    pub class_names: Vec<String>,
    /// Test images on the first two principal components of their embeddings.
    pub map: Vec<MapPoint>,
    /// After a run: the same images before training and after each epoch, on the axes of
    /// `map` (the final model's), so the classes are seen pulling apart; empty otherwise.
    pub map_over_time: Vec<MapFrame>,
    /// None without test images or classes to recognise.
    pub open_set: Option<OpenSetReport>,
    /// Of every pair of the classified test images: the closest of different classes and the
    /// farthest of one class, worst first; where mislabelled and near-duplicate images show up.
    pub closest_dissimilar: Vec<HardPair>,
    pub farthest_similar: Vec<HardPair>,
    pub note: Option<String>,
}

/// Test images recognised as the class of the nearest prototype, or as none of the above.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct OpenSetReport {
    /// The classes recognised: those trained on (each a prototype of its reference images)
    /// then those enrolled.
    pub classes: Vec<String>,
    pub enrolled: Vec<EnrolledSummary>,
    pub unknowns: UnknownQueries,
    /// Test images of the recognised classes, and of the unknowns.
    pub known_queries: usize,
    pub unknown_queries: usize,
    /// Known test images whose nearest prototype is their class's, at no distance limit.
    pub closed_set_acc: f64,
    /// The same, of the enrolled classes' test images only; None when the data has none.
    pub enrolled_acc: Option<f64>,
    pub enrolled_queries: usize,
    /// The rates as the unknown distance moves (a DET curve), nearest first.
    pub curve: Vec<OperatingPoint>,
    /// Where the false accepts and false rejects are nearest; None without unknowns.
    pub equal_error: Option<OperatingPoint>,
    pub eer: Option<f64>,
    /// The model's unknown distance and its rates.
    pub chosen: OperatingPoint,
}

/// Which test images play the unknowns.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnknownQueries {
    /// Those of classes held out of training and not enrolled: never seen, as in use.
    HeldOut { classes: Vec<String> },
    /// No class is unknown, so each known test image is also scored as if its own class were
    /// missing: its distance to the nearest other class. The model has seen those classes, so
    /// this is kinder than held-out classes.
    LeaveOneClassOut,
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct EnrolledSummary {
    pub name: String,
    pub images: usize,
}

/// Two test images, their classes and distance.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct HardPair {
    pub left: Thumbnail,
    pub right: Thumbnail,
    pub left_class: String,
    pub right_class: String,
    pub distance: f32,
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct MapPoint {
    pub x: f32,
    pub y: f32,
    pub label: usize,
    pub thumbnail: Thumbnail,
}

/// The map's points, in its order, under the model of one epoch (0: before training).
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct MapFrame {
    pub epoch: usize,
    pub points: Vec<[f32; 2]>,
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct Neighbour {
    pub thumbnail: Thumbnail,
    pub class_name: String,
    pub distance: f32,
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
pub struct GalleryPair {
    pub left: Thumbnail,
    pub right: Thumbnail,
    pub distance: f32,
    pub dissimilar: bool,
    pub predicted_dissimilar: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_cross_as_one_flat_object_with_their_request_id() {
        let progress = BatchProgress {
            epoch: 1,
            epochs: 2,
            step: 3,
            steps_per_epoch: 4,
            loss: 0.5,
            pairs_per_s: 10.0,
            elapsed_s: 1.0,
        };
        let epoch = Reply::Epoch {
            summary: EpochSummary {
                epoch: 1,
                train_loss: 0.25,
                validation_loss: None,
                validation_acc: Some(0.75),
            },
            memory_bytes: 64.0,
        };
        for (reply, expected) in [
            (
                Reply::Progress(progress),
                r#"{"id":7,"type":"progress","epoch":1,"epochs":2,"step":3,"steps_per_epoch":4,"loss":0.5,"pairs_per_s":10.0,"elapsed_s":1.0}"#,
            ),
            (
                epoch,
                r#"{"id":7,"type":"epoch","epoch":1,"train_loss":0.25,"validation_loss":null,"validation_acc":0.75,"memory_bytes":64.0}"#,
            ),
            (
                Reply::error("no"),
                r#"{"id":7,"type":"error","message":"no","fatal":false}"#,
            ),
        ] {
            let text = serde_json::to_string(&Envelope {
                id: 7,
                reply: &reply,
            })
            .unwrap();
            assert_eq!(text, expected);
        }
    }

    #[test]
    fn requests_are_read_with_their_id_and_bytes() {
        let request: Request = serde_json::from_str(
            r#"{"id":3,"type":"load_model","file_name":"a.siamese","bytes":[1,2,3]}"#,
        )
        .unwrap();
        assert_eq!(request.id, 3);
        assert!(matches!(
            request.command,
            Command::LoadModel { ref file_name, ref bytes } if file_name == "a.siamese" && bytes == &[1, 2, 3]
        ));
    }
}

/// The front ends' view of these types, `www/messages.d.ts`, is generated from them: a field
/// renamed here and not there fails this test, and `tsc --checkJs` (scripts/test.sh) fails on
/// JavaScript that uses a name the declarations do not have.
#[cfg(test)]
mod typescript {
    use ts_rs::{Config, TS};

    use super::*;
    use crate::benchmark::BenchmarkJob;
    use crate::data::ImageShape;
    use crate::model_file::EnrolledClass;
    use crate::open_set::{OperatingPoint, Recognition};
    use crate::projector::ProjectorFiles;
    use crate::session::settings::RunSettings;
    use crate::training::TrainConfig;

    const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/www/messages.d.ts");

    fn declarations() -> String {
        let config = Config::new().with_large_int("number");
        let declarations = [
            Command::decl(&config),
            Reply::decl(&config),
            UploadedFile::decl(&config),
            RunSettings::decl(&config),
            BackendChoice::decl(&config),
            ImageRef::decl(&config),
            WebGpuSupport::decl(&config),
            DatasetSummary::decl(&config),
            ClassSummary::decl(&config),
            Thumbnail::decl(&config),
            RunReport::decl(&config),
            RunResult::decl(&config),
            AnalysisReport::decl(&config),
            MapPoint::decl(&config),
            MapFrame::decl(&config),
            OpenSetReport::decl(&config),
            UnknownQueries::decl(&config),
            EnrolledSummary::decl(&config),
            HardPair::decl(&config),
            OperatingPoint::decl(&config),
            Recognition::decl(&config),
            EnrolledClass::decl(&config),
            Neighbour::decl(&config),
            GalleryPair::decl(&config),
            TrainConfig::decl(&config),
            BatchProgress::decl(&config),
            EpochSummary::decl(&config),
            ThresholdSource::decl(&config),
            Evaluation::decl(&config),
            ModelInfo::decl(&config),
            ImageShape::decl(&config),
            BenchmarkJob::decl(&config),
            BenchmarkResult::decl(&config),
            ProjectorFiles::decl(&config),
        ];
        let mut text = String::from(
            "// Generated from the Rust types of src/session/messages.rs by its test \
             `typescript`:\n// UPDATE_TYPES=1 cargo test --lib typescript. Do not edit.\n\n\
             /** What a front end sends; `trainer.js` adds the id. */\n\
             export type Request = Command & { id: number };\n\n\
             /** What the worker posts: a reply and the id of the request it answers (0: none). */\n\
             export type Message = Reply & { id: number };\n",
        );
        for declaration in declarations {
            text.push_str("\nexport ");
            text.push_str(&declaration);
            text.push('\n');
        }
        text
    }

    #[test]
    fn the_typescript_declarations_are_those_of_the_rust_types() {
        let generated = declarations();
        if std::env::var_os("UPDATE_TYPES").is_some() {
            std::fs::write(PATH, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(PATH).unwrap_or_default();
        assert!(
            committed == generated,
            "www/messages.d.ts is not what the Rust types say: UPDATE_TYPES=1 cargo test --lib typescript"
        );
    }
}
