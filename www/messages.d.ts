// Generated from the Rust types of src/session/messages.rs by its test `typescript`:
// UPDATE_TYPES=1 cargo test --lib typescript. Do not edit.

/** What a front end sends; `trainer.js` adds the id. */
export type Request = Command & { id: number };

/** What the worker posts: a reply and the id of the request it answers (0: none). */
export type Message = Reply & { id: number };

export type Command = { "type": "use_mnist", url: string, train_images: number | null, test_images: number | null, } | { "type": "begin_files", total: number, channels: number, height: number, width: number, } | { "type": "add_files", files: Array<UploadedFile>, } | { "type": "end_files" } | { "type": "train", settings: RunSettings, } | { "type": "stop" } | { "type": "compare", left: ImageRef, right: ImageRef, } | { "type": "neighbours", query: ImageRef, k: number, } | { "type": "save_model" } | { "type": "evaluate" } | { "type": "export_projector" } | { "type": "export_projector_archive" } | { "type": "benchmark", backend: BackendChoice, job: BenchmarkJob, } | { "type": "enrol", class_name: string, images: Array<ImageRef>, } | { "type": "enrol_held_out", images_per_class: number, } | { "type": "set_unknown_distance", distance: number, } | { "type": "split_list", settings: RunSettings | null, } | { "type": "load_model", file_name: string, bytes: Uint8Array, };

export type Reply = { "type": "ready", webgpu: WebGpuSupport, 
/**
 * Whether this module can train on WebGPU: the CPU-only module, which a browser
 * without a real GPU loads, cannot (`www/worker.js`).
 */
webgpu_module: boolean, 
/**
 * The settings a run takes when the front end changes none: the article's.
 */
defaults: TrainConfig, } | { "type": "files_read", done: number, total: number, keys: Array<string | null>, } | { "type": "dataset_loaded" } & DatasetSummary | { "type": "backend", backend: string, reason: string, } | { "type": "progress" } & BatchProgress | { "type": "epoch", 
/**
 * The worker's WebAssembly memory after the epoch: it must not grow epoch after epoch.
 */
memory_bytes: number, epoch: number, train_loss: number, 
/**
 * None when the validation part is too small to make both kinds of pair.
 */
validation_loss: number | null, validation_acc: number | null, } | { "type": "done" } & RunReport | { "type": "compared", distance: number, threshold: number, dissimilar: boolean, left: Thumbnail, right: Thumbnail, 
/**
 * What each image is among the classes ("none of the above" past the model's unknown
 * distance); None without data of the model's image size loaded.
 */
left_recognised: Recognition | null, right_recognised: Recognition | null, 
/**
 * Whether the model trained on each image; None when its file does not say.
 */
left_seen: boolean | null, right_seen: boolean | null, } | { "type": "analysis" } & AnalysisReport | { "type": "neighbours", query: Thumbnail, 
/**
 * The class most of the nearest `knn_k` images have.
 */
predicted_class: string | null, 
/**
 * The class whose prototype is nearest, or none of the above.
 */
recognised: Recognition | null, neighbours: Array<Neighbour>, } | { "type": "open_set" } & OpenSetReport | { "type": "model_file", file_name: string, bytes: Uint8Array, info: ModelInfo, } | { "type": "model_loaded", file_name: string, info: ModelInfo, } | { "type": "benchmark" } & BenchmarkResult | { "type": "evaluated", 
/**
 * The test pairs every test figure is measured on.
 */
test_pairs: number, 
/**
 * Of them, pairs of one class (the rest are of two).
 */
test_pairs_similar: number, 
/**
 * Test images left out because the model trained on them; None when it does not say.
 */
seen_images_left_out: number | null, 
/**
 * None without test pairs (`note` says why).
 */
evaluation: Evaluation | null, note: string | null, } | { "type": "projector" } & ProjectorFiles | { "type": "split_list", file_name: string, tsv: string, } | { "type": "projector_archive", file_name: string, bytes: Uint8Array, } | { "type": "error", message: string, fatal: boolean, };

export type UploadedFile = { class_name: string, file_name: string, bytes: Uint8Array, 
/**
 * Files of one group (the frames of one camera hold, the files of a group folder) go to
 * one side of the split together.
 */
group?: string, 
/**
 * For a shrunk copy of an image (as the page keeps large ones), the key `files_read` gave
 * the image it was made from: the copy keeps that image's place in the split and in the
 * models that trained on it.
 */
key?: string, };

export type RunSettings = { epochs?: string, batch_size?: string, learning_rate?: string, margin?: string, validation_split?: string, seed?: string, 
/**
 * Class names, separated by commas (a name may hold spaces).
 */
held_out_classes?: string, 
/**
 * `auto`, `webgpu` or `cpu`.
 */
backend?: string, 
/**
 * On the CPU, the workers that share every batch.
 */
workers?: string, };

export type BackendChoice = "auto" | "webgpu" | "cpu";

export type ImageRef = { "kind": "test", index: number, } | { "kind": "file", file_name: string, bytes: Uint8Array, };

export type WebGpuSupport = { "kind": "missing", reason: string, } | { "kind": "software", adapter: string, } | { "kind": "hardware", adapter: string, };

export type DatasetSummary = { name: string, channels: number, height: number, width: number, train_images: number, test_images: number, 
/**
 * The groups of two images or more the split kept whole in each part: a camera hold, a
 * group folder, or the copies of one image.
 */
train_groups: number, test_groups: number, 
/**
 * The test pairs every test figure will be measured on; 0 when the test part cannot pair.
 */
test_pairs: number, classes: Array<ClassSummary>, 
/**
 * One line per file that could not be used, naming the file.
 */
file_errors: Array<string>, 
/**
 * One line per file used in part (the first frame of an animation), naming the file.
 */
file_notes: Array<string>, 
/**
 * A warning for each image found under two classes or more, naming its files.
 */
duplicates: Array<string>, 
/**
 * Set when the data cannot train yet; says what to add.
 */
problem: string | null, };

export type ClassSummary = { name: string, count: number, thumbnails: Array<Thumbnail>, };

export type Thumbnail = { width: number, height: number, rgba: Uint8Array, };

export type RunReport = { result: RunResult, 
/**
 * None when the test part cannot make both kinds of pair (`note` says why).
 */
evaluation: Evaluation | null, gallery: Array<GalleryPair>, stopped: boolean, 
/**
 * Why the run ended before its last epoch when the loss blew up: the model of the last
 * good epoch is the one evaluated and kept.
 */
interrupted: string | null, 
/**
 * Why figures are missing, when they are.
 */
note: string | null, };

export type RunResult = { backend: string, epochs: number, 
/**
 * The test pairs every test figure is measured on: half of them similar, drawn from the
 * test images of the classes trained on.
 */
test_pairs: number, 
/**
 * Of them, pairs of one class.
 */
test_pairs_similar: number, test_acc: number | null, best_threshold: number, 
/**
 * Where `best_threshold` was chosen.
 */
threshold_source: ThresholdSource, test_acc_best: number | null, auc: number | null, pairs_per_s: number, train_s: number, 
/**
 * The workers that trained, each with its share of every batch (1 on a GPU).
 */
workers: number, };

export type AnalysisReport = { 
/**
 * Test pair accuracy at `threshold`, the model's own, on the same test pairs as the run's
 * figures; None without test pairs.
 */
pair_acc: number | null, test_pairs: number, test_pairs_similar: number, 
/**
 * Test images the model trained or validated on, left out of every figure here; None when
 * its file does not say what it saw (then the figures may include such images).
 */
seen_images_left_out: number | null, 
/**
 * Whether the loaded data's training part differs from the images the model trained on
 * (the data changed since, or the model came from other data); None when it does not say.
 */
training_data_changed: boolean | null, threshold: number, knn_k: number, 
/**
 * None without test images (`note` says why).
 */
knn_acc: number | null, one_shot_ways: number, one_shot_acc: number | null, 
/**
 * Images the k-NN and one-shot classifiers drew their examples from (training images).
 */
reference_images: number, 
/**
 * Test images classified (all of them, or a stratified sample of a large test part).
 */
test_images: number, class_names: Array<string>, 
/**
 * Test images on the first two principal components of their embeddings.
 */
map: Array<MapPoint>, 
/**
 * After a run: the same images before training and after each epoch, on the axes of
 * `map` (the final model's), so the classes are seen pulling apart; empty otherwise.
 */
map_over_time: Array<MapFrame>, 
/**
 * None without test images or classes to recognise.
 */
open_set: OpenSetReport | null, 
/**
 * Of every pair of the classified test images: the closest of different classes and the
 * farthest of one class, worst first; where mislabelled and near-duplicate images show up.
 */
closest_dissimilar: Array<HardPair>, farthest_similar: Array<HardPair>, note: string | null, };

export type MapPoint = { x: number, y: number, label: number, thumbnail: Thumbnail, };

export type MapFrame = { epoch: number, points: Array<[number, number]>, };

export type OpenSetReport = { 
/**
 * The classes recognised: those trained on (each a prototype of its reference images)
 * then those enrolled.
 */
classes: Array<string>, enrolled: Array<EnrolledSummary>, unknowns: UnknownQueries, 
/**
 * Test images of the recognised classes, and of the unknowns.
 */
known_queries: number, unknown_queries: number, 
/**
 * Known test images whose nearest prototype is their class's, at no distance limit.
 */
closed_set_acc: number, 
/**
 * The same, of the enrolled classes' test images only; None when the data has none.
 */
enrolled_acc: number | null, enrolled_queries: number, 
/**
 * The rates as the unknown distance moves (a DET curve), nearest first.
 */
curve: Array<OperatingPoint>, 
/**
 * Where the false accepts and false rejects are nearest; None without unknowns.
 */
equal_error: OperatingPoint | null, eer: number | null, 
/**
 * The model's unknown distance and its rates.
 */
chosen: OperatingPoint, };

export type UnknownQueries = { "kind": "held_out", classes: Array<string>, } | { "kind": "leave_one_class_out" };

export type EnrolledSummary = { name: string, images: number, };

export type HardPair = { left: Thumbnail, right: Thumbnail, left_class: string, right_class: string, distance: number, };

export type OperatingPoint = { distance: number, 
/**
 * Unknown queries accepted as some class (false accepts).
 */
far: number, 
/**
 * Known queries called unknown (false rejects).
 */
frr: number, 
/**
 * Known queries accepted as their own class.
 */
recognised: number, };

export type Recognition = { 
/**
 * The class it is recognised as; None: none of the above.
 */
class_name: string | null, nearest_class: string, 
/**
 * To the nearest class's prototype.
 */
distance: number, unknown_distance: number, };

export type EnrolledClass = { name: string, embeddings: Array<Array<number>>, };

export type Neighbour = { thumbnail: Thumbnail, class_name: string, distance: number, };

export type GalleryPair = { left: Thumbnail, right: Thumbnail, distance: number, dissimilar: boolean, predicted_dissimilar: boolean, };

export type TrainConfig = { epochs: number, 
/**
 * Pairs per batch (each pair is two images through the tower).
 */
batch_size: number, learning_rate: number, margin: number, 
/**
 * Fraction of the training images held out to validate each epoch and pick the threshold.
 */
validation_split: number, seed: number, 
/**
 * Classes left out of training: the unknowns that "none of the above" is measured on, and
 * the classes one may enrol from a few images afterwards. Test pair figures then use only
 * the trained classes' test pairs. (An Option so that model files of earlier versions,
 * which lack the field, still read.)
 */
held_out_classes: Array<string> | null, };

export type BatchProgress = { 
/**
 * 1-based.
 */
epoch: number, epochs: number, 
/**
 * 1-based within the epoch.
 */
step: number, steps_per_epoch: number, loss: number, 
/**
 * Training pairs per second since the run started.
 */
pairs_per_s: number, elapsed_s: number, };

export type EpochSummary = { epoch: number, train_loss: number, 
/**
 * None when the validation part is too small to make both kinds of pair.
 */
validation_loss: number | null, validation_acc: number | null, };

export type ThresholdSource = "validation" | "training";

export type Evaluation = { 
/**
 * Accuracy with the article's rule, D > 0.5 means dissimilar.
 */
test_acc: number, 
/**
 * Threshold chosen on the validation pairs (or the training pairs, when there were none).
 */
best_threshold: number, 
/**
 * Test accuracy at `best_threshold`.
 */
test_acc_best: number, auc: number, roc: Array<[number, number]>, similar_distances: Array<number>, dissimilar_distances: Array<number>, };

export type ModelInfo = { shape: ImageShape, embedding_size: number, class_names: Array<string>, 
/**
 * The distance above which a pair is called dissimilar.
 */
threshold: number, 
/**
 * Where `threshold` was chosen (files of the first version do not say).
 */
threshold_source?: ThresholdSource | null, config: TrainConfig, 
/**
 * What it was trained on, for people: "MNIST digits", "your images (120 files)".
 */
dataset: string, epochs_trained: number, 
/**
 * Test pair accuracy at `threshold` when it was trained; None when its data had no test
 * pairs.
 */
test_acc: number | null, 
/**
 * Classes added after training from a few images each (absent from earlier files, and
 * ignored by their reader).
 */
enrolled?: Array<EnrolledClass>, 
/**
 * The distance to the nearest class's prototype past which an image is none of the
 * classes; None until the model's first analysis picks one.
 */
unknown_distance?: number | null, 
/**
 * The images it trained and validated on, which every test figure computed with it leaves
 * out; None in files of earlier versions, whose figures cannot be checked so.
 */
seen_images?: { keys: string, labels: string }, };

export type ImageShape = { channels: number, height: number, width: number, };

export type BenchmarkJob = { 
/**
 * Pairs per step.
 */
batch: number, warmup: number, steps: number, 
/**
 * Timed repetitions of each stage of the tower (after one untimed); 0 leaves them out.
 */
layer_repeats: number, };

export type BenchmarkResult = { backend: string, batch: number, steps: number, pairs_per_s: number, ms_per_step_median: number, ms_per_step_min: number, ms_per_step_max: number, first_step_ms: number, 
/**
 * Median ms of forward and backward through each stage alone, on one step's batch.
 */
layers_ms: { [key in string]: number }, };

export type ProjectorFiles = { vectors_tsv: string, metadata_tsv: string, sprite_png: Uint8Array, config_json: string, 
/**
 * Rows of `vectors_tsv` and `metadata_tsv`: one per image.
 */
rows: number, 
/**
 * The side of each image in the sprite (shrunk so the grid fits the projector's limit).
 */
sprite_image_side: number, };
