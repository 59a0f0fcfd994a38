//! The session as every front end drives it: each command, its errors, and the policies that
//! decide which images a figure is measured on. Native only; the browser runs the same session
//! behind its worker.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Cursor;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use serde_json::{Value, json};

use siamese_web::benchmark::BenchmarkJob;
use siamese_web::model_file::{model_file, read_model_info};
use siamese_web::rng::SeededRng;
use siamese_web::session::messages::{
    BackendChoice, Command, ImageRef, Reply, Request, UnknownQueries, UploadedFile, WebGpuSupport,
};
use siamese_web::session::settings::RunSettings;
use siamese_web::session::{Host, Session};
use siamese_web::training::{ThresholdSource, TrainConfig};

const MNIST_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist-10k.bin.gz");

/// Keeps every reply; offers no GPU.
#[derive(Default)]
struct Recorder {
    replies: Vec<Reply>,
}

impl Host for Recorder {
    fn send(&mut self, reply: Reply) {
        self.replies.push(reply);
    }

    async fn fetch(&mut self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|err| err.to_string())
    }

    async fn webgpu(&mut self) -> WebGpuSupport {
        WebGpuSupport::Missing {
            reason: "the tests run without a GPU".into(),
        }
    }

    async fn yield_now(&mut self) {}

    fn memory_bytes(&self) -> f64 {
        0.0
    }
}

/// A recorder that, at the first yield of the command it serves, has the session handle
/// `interruption` (as a message arriving while a run trains or an analysis embeds would be).
struct Interrupting<'s> {
    outer: Recorder,
    session: &'s Session,
    interruption: Option<Command>,
    inner: Recorder,
}

impl Host for Interrupting<'_> {
    fn send(&mut self, reply: Reply) {
        self.outer.send(reply);
    }

    async fn fetch(&mut self, path: &str) -> Result<Vec<u8>, String> {
        self.outer.fetch(path).await
    }

    async fn webgpu(&mut self) -> WebGpuSupport {
        self.outer.webgpu().await
    }

    async fn yield_now(&mut self) {
        if let Some(command) = self.interruption.take() {
            self.session.handle(command, &mut self.inner).await;
        }
    }

    fn memory_bytes(&self) -> f64 {
        0.0
    }
}

fn run(session: &Session, command: Command) -> Vec<Reply> {
    let mut recorder = Recorder::default();
    pollster::block_on(session.handle(command, &mut recorder));
    recorder.replies
}

fn mnist(train_images: usize, test_images: usize) -> Command {
    Command::UseMnist {
        url: MNIST_PATH.into(),
        train_images: Some(train_images),
        test_images: Some(test_images),
    }
}

fn train(config: TrainConfig) -> Command {
    Command::Train {
        settings: RunSettings::of(&config, BackendChoice::Cpu, 1),
    }
}

/// The message of the one error among `replies`.
fn error_of(replies: &[Reply]) -> String {
    let errors: Vec<&String> = replies
        .iter()
        .filter_map(|reply| match reply {
            Reply::Error { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{replies:?}");
    errors[0].clone()
}

fn assert_refused(session: &Session, command: Command, expected: &str) {
    let message = error_of(&run(session, command));
    assert!(message.contains(expected), "{message:?} lacks {expected:?}");
}

macro_rules! find {
    ($replies:expr, $pattern:pat => $value:expr) => {
        $replies
            .iter()
            .find_map(|reply| match reply {
                $pattern => Some($value),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {} in {:?}", stringify!($pattern), $replies))
    };
}

fn png(side: u32, paint: impl Fn(u32, u32) -> u8) -> Vec<u8> {
    let image = image::GrayImage::from_fn(side, side, |x, y| image::Luma([paint(x, y)]));
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

fn file(class_name: &str, index: usize, bytes: Vec<u8>) -> UploadedFile {
    UploadedFile {
        class_name: class_name.into(),
        file_name: format!("{class_name}/{index}.png"),
        bytes,
        group: None,
        key: None,
    }
}

/// A distinct 28x28 image for each `id`: a class's stroke (`class` 0-2) moved by the id.
fn drawn(class: usize, id: usize) -> Vec<u8> {
    png(28, |x, y| {
        let (x, y, id) = (x as usize, y as usize, id);
        let on = match class {
            0 => (x + id % 7).abs_diff(14) < 3,
            1 => (y + id % 7).abs_diff(14) < 3,
            _ => (x + y + id % 5).abs_diff(28) < 3,
        };
        if on {
            200 + (id / 7 % 50) as u8
        } else {
            (id % 3) as u8
        }
    })
}

/// `per_class` distinct images of each of three classes, named `a/0.png`...
fn three_classes(per_class: usize) -> Vec<UploadedFile> {
    (0..3 * per_class)
        .map(|i| file(["a", "b", "c"][i % 3], i, drawn(i % 3, i / 3)))
        .collect()
}

/// The split list's lines as (path, class, part).
fn split_list(session: &Session) -> Vec<(String, String, String)> {
    let replies = run(session, Command::SplitList { settings: None });
    let tsv = find!(replies, Reply::SplitList { tsv, .. } => tsv.clone());
    let mut lines = tsv.lines();
    assert_eq!(lines.next(), Some("path\tclass\tpart"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 3, "{line}");
            (fields[0].into(), fields[1].into(), fields[2].into())
        })
        .collect()
}

fn part_of<'a>(list: &'a [(String, String, String)], path: &str) -> &'a str {
    &list.iter().find(|(p, _, _)| p == path).unwrap().2
}

/// Loads `files` through the three file commands, as the page sends them.
fn upload(session: &Session, side: usize, files: Vec<UploadedFile>) -> Vec<Reply> {
    let mut replies = run(
        session,
        Command::BeginFiles {
            total: files.len(),
            channels: 1,
            height: side,
            width: side,
        },
    );
    replies.extend(run(session, Command::AddFiles { files }));
    replies.extend(run(session, Command::EndFiles));
    replies
}

#[test]
fn commands_without_what_they_need_say_what_to_do_first() {
    let session = Session::new();
    let config = TrainConfig::new().with_epochs(1);
    assert_refused(&session, train(config.clone()), "choose data first");
    assert_refused(
        &session,
        Command::Benchmark {
            backend: BackendChoice::Cpu,
            job: BenchmarkJob::default(),
        },
        "choose data first",
    );
    let test_image = |index| ImageRef::Test { index };
    assert_refused(
        &session,
        Command::Compare {
            left: test_image(0),
            right: test_image(1),
        },
        "train a model first",
    );
    assert_refused(
        &session,
        Command::Neighbours {
            query: test_image(0),
            k: 3,
        },
        "train or load a model first",
    );
    assert_refused(&session, Command::SaveModel, "train a model first");
    assert_refused(
        &session,
        Command::AddFiles { files: Vec::new() },
        "without a load begun",
    );
    assert_refused(&session, Command::EndFiles, "without a load begun");
    assert_refused(
        &session,
        Command::UseMnist {
            url: "/nowhere/mnist.bin.gz".into(),
            train_images: None,
            test_images: None,
        },
        "cannot load the MNIST digits from /nowhere/mnist.bin.gz",
    );
    assert_refused(
        &session,
        Command::LoadModel {
            file_name: "notes.siamese".into(),
            bytes: b"not a model".to_vec(),
        },
        "notes.siamese: this is not a siamese-web model file",
    );
    // An image size the network cannot take is refused when the files start, not at Train:
    // too large, each image would need gigabytes (or, past 32 bits, be decoded at another size
    // than the data's).
    for (channels, height, width, expected) in [
        (1, 8, 8, "images of 8x8 are too small"),
        (2, 28, 28, "1 (grey) or 3 (RGB)"),
        (
            1,
            4_294_967_324,
            28,
            "images of 28x4294967324 are too large",
        ),
        (3, 1025, 1000, "use at most 1024x1024"),
    ] {
        let command = Command::BeginFiles {
            total: 1,
            channels,
            height,
            width,
        };
        assert_refused(&session, command, expected);
    }
    run(&session, mnist(200, 100));
    assert_refused(
        &session,
        train(config.with_epochs(0)),
        "invalid settings: epochs is \"0\": it must be a whole number, 1 or more",
    );
    // WebGPU chosen where there is none is refused; Auto trains on the CPU and says why.
    let one_epoch = TrainConfig::new().with_epochs(1);
    let webgpu = Command::Train {
        settings: RunSettings::of(&one_epoch, BackendChoice::Webgpu, 1),
    };
    assert_refused(
        &session,
        webgpu,
        "WebGPU was chosen but the tests run without a GPU",
    );
    let no_workers = Command::Train {
        settings: RunSettings::of(&one_epoch, BackendChoice::Cpu, 0),
    };
    assert_refused(
        &session,
        no_workers,
        "workers is \"0\": it must be a whole number from 1 to 64",
    );
    // A validation split that leaves a class nothing to train on is named.
    let tiny = Session::new();
    upload(&tiny, 28, three_classes(2));
    let most = TrainConfig::new().with_validation_split(0.9);
    assert_refused(
        &tiny,
        train(most),
        "validation_split 0.9 leaves too little to train on",
    );
}

#[test]
fn a_run_is_trained_tested_analysed_used_saved_and_loaded_on_one_set_of_test_pairs() {
    let session = Session::new();
    let loaded = run(&session, mnist(600, 200));
    let summary = find!(loaded, Reply::DatasetLoaded(summary) => summary);
    // A stratified sample: about 200 test images, each with a similar and a dissimilar pair.
    let test_images = summary.test_images;
    assert!((195..=205).contains(&test_images), "{test_images}");
    assert_eq!(summary.test_pairs, 2 * test_images);

    let replies = run(
        &session,
        Command::Train {
            settings: RunSettings {
                epochs: Some("1".into()),
                ..RunSettings::default()
            },
        },
    );
    let (backend, reason) = find!(replies, Reply::Backend { backend, reason } => (backend, reason));
    assert_eq!(backend, "cpu");
    assert!(reason.contains("without a GPU"), "{reason}");
    let report = find!(replies, Reply::Done(report) => report);
    let analysis = find!(replies, Reply::Analysis(analysis) => analysis);
    let result = &report.result;
    assert_eq!(result.test_pairs, 2 * test_images);
    assert_eq!(result.threshold_source, ThresholdSource::Validation);
    let test_acc_best = result.test_acc_best.unwrap();
    assert!(test_acc_best > 0.75, "{test_acc_best}");
    assert_eq!(report.gallery.len(), 12);
    // One figure, one definition: the analysis's pair accuracy at the model's threshold is the
    // run's accuracy at its best threshold, on the same test pairs.
    assert_eq!(analysis.test_pairs, 2 * test_images);
    assert_eq!(analysis.pair_acc, Some(test_acc_best));
    assert_eq!(analysis.threshold, result.best_threshold);
    assert_eq!(
        (analysis.test_images, analysis.one_shot_ways),
        (test_images, 10)
    );
    assert!(analysis.knn_acc.unwrap() > 0.6, "{:?}", analysis.knn_acc);

    let compared = run(
        &session,
        Command::Compare {
            left: ImageRef::Test { index: 0 },
            right: ImageRef::Test { index: 0 },
        },
    );
    let distance =
        find!(compared, Reply::Compared { distance, dissimilar, .. } => (*distance, *dissimilar));
    assert!(distance.0 < 1e-3 && !distance.1, "{distance:?}");
    assert_refused(
        &session,
        Command::Compare {
            left: ImageRef::Test { index: 0 },
            right: ImageRef::Test { index: test_images },
        },
        &format!("there is no test image {test_images}"),
    );
    assert_refused(
        &session,
        Command::Compare {
            left: ImageRef::Test { index: 0 },
            right: ImageRef::File {
                file_name: "x.png".into(),
                bytes: b"text".to_vec(),
            },
        },
        "x.png",
    );
    let found = run(
        &session,
        Command::Neighbours {
            query: ImageRef::Test { index: 3 },
            k: 5,
        },
    );
    let neighbours = find!(found, Reply::Neighbours { neighbours, .. } => neighbours);
    assert_eq!(neighbours.len(), 5);
    assert!(
        neighbours
            .windows(2)
            .all(|w| w[0].distance <= w[1].distance)
    );

    let saved = run(&session, Command::SaveModel);
    let (file_name, bytes) = find!(saved, Reply::ModelFile { file_name, bytes, .. } => (file_name.clone(), bytes.clone()));
    assert_eq!(file_name, "siamese-mnist-digits-1ep.siamese");
    let reloaded = run(
        &session,
        Command::LoadModel {
            file_name,
            bytes: bytes.clone(),
        },
    );
    let info = find!(reloaded, Reply::ModelLoaded { info, .. } => info);
    assert_eq!(info.threshold_source, Some(ThresholdSource::Validation));
    let again = find!(reloaded, Reply::Analysis(analysis) => analysis);
    assert_eq!(again.pair_acc, analysis.pair_acc);

    // A model cannot be loaded over data of another image size; the current one stays.
    let other = Session::new();
    let rgb = (0..6)
        .map(|i| {
            file(
                ["a", "b"][i % 2],
                i,
                png(28, |x, _| (x * 9 * (i as u32 % 2 + 1)) as u8),
            )
        })
        .collect();
    let mut rgb_replies = run(
        &other,
        Command::BeginFiles {
            total: 6,
            channels: 3,
            height: 16,
            width: 16,
        },
    );
    rgb_replies.extend(run(&other, Command::AddFiles { files: rgb }));
    rgb_replies.extend(run(&other, Command::EndFiles));
    find!(rgb_replies, Reply::DatasetLoaded(summary) => summary);
    assert_refused(
        &other,
        Command::LoadModel {
            file_name: "digits.siamese".into(),
            bytes,
        },
        "trained for 28x28 grey images, but the loaded data is 16x16 RGB",
    );

    let benchmark = run(
        &session,
        Command::Benchmark {
            backend: BackendChoice::Cpu,
            job: BenchmarkJob {
                batch: 8,
                warmup: 1,
                steps: 2,
                layer_repeats: 0,
            },
        },
    );
    let timed = find!(benchmark, Reply::Benchmark(result) => result);
    assert_eq!((timed.backend.as_str(), timed.steps), ("cpu", 2));
}

#[test]
fn classes_held_out_of_training_are_unknown_until_enrolled_from_a_few_images() {
    let session = Session::new();
    let loaded = run(&session, mnist(1500, 500));
    let test_images = find!(loaded, Reply::DatasetLoaded(summary) => summary.test_images);
    let mut config = TrainConfig::new().with_epochs(2);
    config.held_out_classes = Some(vec!["8".into(), "9".into()]);
    let replies = run(&session, train(config));
    let report = find!(replies, Reply::Done(report) => report);
    let analysis = find!(replies, Reply::Analysis(analysis) => analysis);
    // Test figures are on pairs of the trained digits' test images, one similar and one
    // dissimilar partner for each: fewer, balanced, and the same in both.
    assert!(report.result.test_pairs < 2 * test_images * 9 / 10);
    assert_eq!(report.result.test_pairs, 2 * analysis.test_images);
    assert_eq!(
        2 * report.result.test_pairs_similar,
        report.result.test_pairs
    );
    assert_eq!(analysis.test_pairs, report.result.test_pairs);
    assert_eq!(
        analysis.test_pairs_similar,
        report.result.test_pairs_similar
    );
    assert_eq!(analysis.pair_acc, report.result.test_acc_best);
    assert_eq!(analysis.one_shot_ways, 8);

    let open = analysis.open_set.as_ref().unwrap();
    let trained: Vec<String> = (0..8).map(|d| d.to_string()).collect();
    assert_eq!(open.classes, trained);
    assert!(
        matches!(&open.unknowns, UnknownQueries::HeldOut { classes } if classes == &["8", "9"]),
        "{:?}",
        open.unknowns
    );
    // About a fifth of the test digits are 8s and 9s.
    assert_eq!(open.known_queries + open.unknown_queries, test_images);
    assert!((70..130).contains(&open.unknown_queries), "{open:?}");
    let equal = open.equal_error.unwrap();
    let eer = open.eer.unwrap();
    assert!(
        eer < 0.45 && (equal.far - equal.frr).abs() < 0.05,
        "{eer} {equal:?}"
    );
    assert!(open.closed_set_acc > 0.8, "{}", open.closed_set_acc);
    // The default distance rejects 5 % of the validation images: about as many known test
    // images, and some of the unknowns.
    let chosen = open.chosen;
    assert!(chosen.frr > 0.01 && chosen.frr < 0.12, "{chosen:?}");
    assert!(chosen.far < 0.9, "{chosen:?}");

    // The map before training and after each epoch, on the final map's axes: the last frame is
    // the map, and the classes pull apart (their spread about their own centre shrinks against
    // the whole map's).
    let frames = &analysis.map_over_time;
    assert_eq!(
        frames.iter().map(|f| f.epoch).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    for (point, last) in analysis.map.iter().zip(&frames[2].points) {
        assert!((point.x - last[0]).abs() < 1e-4 && (point.y - last[1]).abs() < 1e-4);
    }
    let labels: Vec<usize> = analysis.map.iter().map(|p| p.label).collect();
    let (before, after) = (
        within_class_share(&frames[0].points, &labels),
        within_class_share(&frames[2].points, &labels),
    );
    assert!(
        after < 0.8 * before,
        "within-class spread {before} -> {after}"
    );

    // The hardest pairs: of different classes nearest first, of one class farthest first.
    let near = &analysis.closest_dissimilar;
    let far = &analysis.farthest_similar;
    assert_eq!((near.len(), far.len()), (6, 6));
    assert!(near.iter().all(|p| p.left_class != p.right_class));
    assert!(far.iter().all(|p| p.left_class == p.right_class));
    assert!(near.windows(2).all(|w| w[0].distance <= w[1].distance));
    assert!(far.windows(2).all(|w| w[0].distance >= w[1].distance));
    assert!(near[0].distance < far[0].distance);

    // At the equal error rate's distance.
    let moved = run(
        &session,
        Command::SetUnknownDistance {
            distance: equal.distance,
        },
    );
    let at_equal = find!(moved, Reply::OpenSet(report) => report);
    assert_eq!(at_equal.chosen, equal);
    let query = ImageRef::Test { index: 0 };
    let found = run(&session, Command::Neighbours { query, k: 3 });
    let recognised =
        find!(found, Reply::Neighbours { recognised, .. } => recognised.clone().unwrap());
    assert_eq!(recognised.unknown_distance, equal.distance);
    assert_eq!(
        recognised.class_name.is_some(),
        recognised.distance <= equal.distance
    );

    assert_refused(
        &session,
        Command::Enrol {
            class_name: "3".into(),
            images: vec![ImageRef::Test { index: 0 }],
        },
        "trained on \"3\" already",
    );
    assert_refused(
        &session,
        Command::Enrol {
            class_name: "new".into(),
            images: Vec::new(),
        },
        "from 1 to 20 images",
    );
    // Enrolled from five training images each, the 8s and 9s are recognised among ten
    // classes; no class is unknown any more, so the curve leaves each class out in turn.
    let enrolled = run(
        &session,
        Command::EnrolHeldOut {
            images_per_class: 5,
        },
    );
    let open = find!(enrolled, Reply::OpenSet(report) => report);
    assert_eq!(open.classes.len(), 10);
    assert!(
        open.enrolled
            .iter()
            .all(|class| class.images == 5 && ["8", "9"].contains(&class.name.as_str()))
    );
    assert!(matches!(open.unknowns, UnknownQueries::LeaveOneClassOut));
    assert_eq!(open.enrolled_queries, test_images - at_equal.known_queries);
    let enrolled_acc = open.enrolled_acc.unwrap();
    assert!(enrolled_acc > 0.4, "{enrolled_acc}");
    assert_refused(
        &session,
        Command::EnrolHeldOut {
            images_per_class: 5,
        },
        "no held-out class is left",
    );

    // The model file keeps the enrolled classes and the unknown distance.
    let saved = run(&session, Command::SaveModel);
    let bytes = find!(saved, Reply::ModelFile { bytes, .. } => bytes.clone());
    let other = Session::new();
    run(&other, mnist(1500, 500));
    let reloaded = run(
        &other,
        Command::LoadModel {
            file_name: "enrolled.siamese".into(),
            bytes,
        },
    );
    let again = find!(reloaded, Reply::Analysis(analysis) => analysis);
    let open_again = again.open_set.as_ref().unwrap();
    assert_eq!(open_again.enrolled_acc, open.enrolled_acc);
    assert_eq!(open_again.chosen.distance, equal.distance);
}

/// The mean squared distance of points to their class's centre, as a share of that to the
/// centre of all.
fn within_class_share(points: &[[f32; 2]], labels: &[usize]) -> f32 {
    let centre = |members: &[&[f32; 2]]| {
        let n = members.len() as f32;
        [0, 1].map(|axis| members.iter().map(|p| p[axis]).sum::<f32>() / n)
    };
    let spread = |members: &[&[f32; 2]]| {
        let c = centre(members);
        members
            .iter()
            .map(|p| (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2))
            .sum::<f32>()
    };
    let all: Vec<&[f32; 2]> = points.iter().collect();
    let within: f32 = (0..=*labels.iter().max().unwrap())
        .map(|class| {
            let members: Vec<&[f32; 2]> = points
                .iter()
                .zip(labels)
                .filter(|(_, l)| **l == class)
                .map(|(p, _)| p)
                .collect();
            if members.is_empty() {
                0.0
            } else {
                spread(&members)
            }
        })
        .sum();
    within / spread(&all)
}

#[test]
fn while_a_run_trains_stop_ends_it_and_new_data_is_refused() {
    let session = Session::new();
    run(&session, mnist(600, 100));
    for (interruption, expected) in [
        (mnist(300, 100), Some("training is running: stop it first")),
        (Command::Stop, None),
    ] {
        let mut host = Interrupting {
            outer: Recorder::default(),
            session: &session,
            interruption: Some(interruption),
            inner: Recorder::default(),
        };
        pollster::block_on(session.handle(train(TrainConfig::new().with_epochs(2)), &mut host));
        let report = find!(host.outer.replies, Reply::Done(report) => report);
        match expected {
            Some(expected) => {
                assert!(error_of(&host.inner.replies).contains(expected));
                assert!(!report.stopped);
                assert_eq!(report.result.epochs, 2);
            }
            None => {
                // Stopped after its first batch: no epoch finished, the model is still tested.
                assert!(report.stopped);
                assert_eq!(report.result.epochs, 0);
                assert!(report.result.test_acc.is_some());
            }
        }
    }
    // The session is usable after both.
    let replies = run(&session, mnist(300, 100));
    find!(replies, Reply::DatasetLoaded(summary) => summary);
}

#[test]
fn an_analysis_overtaken_by_new_data_is_dropped() {
    let session = Session::new();
    run(&session, mnist(300, 100));
    run(&session, train(TrainConfig::new().with_epochs(1)));
    let saved = run(&session, Command::SaveModel);
    let bytes = find!(saved, Reply::ModelFile { bytes, .. } => bytes.clone());
    // The model is loaded; while its analysis embeds the images, other digits are loaded.
    let mut host = Interrupting {
        outer: Recorder::default(),
        session: &session,
        interruption: Some(mnist(200, 50)),
        inner: Recorder::default(),
    };
    let load = Command::LoadModel {
        file_name: "digits.siamese".into(),
        bytes,
    };
    pollster::block_on(session.handle(load, &mut host));
    find!(host.outer.replies, Reply::ModelLoaded { .. } => ());
    assert!(
        !host
            .outer
            .replies
            .iter()
            .any(|r| matches!(r, Reply::Analysis(_))),
        "the stale analysis was sent: {:?}",
        host.outer.replies
    );
    // The new data got its own analysis, of its 50 test images.
    let fresh = find!(host.inner.replies, Reply::Analysis(analysis) => analysis);
    assert_eq!(fresh.test_images, 50);
    // Neighbour searches use the new data's reference, not the stale one.
    let found = run(
        &session,
        Command::Neighbours {
            query: ImageRef::Test { index: 0 },
            k: 200,
        },
    );
    let neighbours = find!(found, Reply::Neighbours { neighbours, .. } => neighbours);
    assert_eq!(neighbours.len(), 100); // k is capped at 100 of the new 200 reference images
}

#[test]
fn a_tiny_upload_shows_no_test_figure_it_cannot_measure_and_says_why() {
    // Two classes of three different images: 20 % held out rounds to one test image per class,
    // which cannot make a similar pair; the validation part rounds to nothing.
    let session = Session::new();
    let files = (0..6)
        .map(|i| {
            let class = ["bars", "rings"][i % 2];
            file(
                class,
                i,
                png(28, |x, y| {
                    if (i % 2 == 0) == (x % 6 < 3) {
                        230 + ((y as usize + i) % 7) as u8
                    } else {
                        10
                    }
                }),
            )
        })
        .collect();
    let replies = upload(&session, 28, files);
    let summary = find!(replies, Reply::DatasetLoaded(summary) => summary);
    assert_eq!(
        (
            summary.train_images,
            summary.test_images,
            summary.test_pairs
        ),
        (4, 2, 0)
    );
    assert_eq!(summary.problem, None);

    let replies = run(&session, train(TrainConfig::new().with_epochs(1)));
    let report = find!(replies, Reply::Done(report) => report);
    assert!(report.evaluation.is_none());
    assert!(report.gallery.is_empty());
    let result = &report.result;
    assert_eq!(
        (result.test_pairs, result.test_acc, result.auc),
        (0, None, None)
    );
    // The threshold was chosen on training pairs, and the run says so.
    assert_eq!(result.threshold_source, ThresholdSource::Training);
    let note = report.note.as_deref().unwrap();
    assert!(note.contains("cannot make both kinds of pair"), "{note}");
    // k-NN and one-shot classify the two held-out images, never the training images they
    // are compared with.
    let analysis = find!(replies, Reply::Analysis(analysis) => analysis);
    assert_eq!((analysis.test_images, analysis.reference_images), (2, 4));
    assert_eq!(analysis.pair_acc, None);
}

#[test]
fn the_same_data_gives_the_same_split_and_test_pairs_whatever_the_training_seed() {
    let session = Session::new();
    run(&session, mnist(400, 100));
    let results: Vec<_> = [1, 2]
        .into_iter()
        .map(|seed| {
            let replies = run(
                &session,
                train(TrainConfig::new().with_epochs(1).with_seed(seed)),
            );
            let report = find!(replies, Reply::Done(report) => report);
            let distances: Vec<f32> = report.gallery.iter().map(|p| p.distance).collect();
            let kinds: Vec<bool> = report.gallery.iter().map(|p| p.dissimilar).collect();
            let thumbnails: Vec<Vec<u8>> =
                report.gallery.iter().map(|p| p.left.rgba.clone()).collect();
            (report.result.test_pairs, distances, kinds, thumbnails)
        })
        .collect();
    // Two models, the same 200 test pairs (the gallery shows their first images).
    assert_eq!(results[0].0, 200);
    assert_eq!(results[0].0, results[1].0);
    assert_eq!(results[0].2, results[1].2);
    assert_eq!(results[0].3, results[1].3);
    assert_ne!(
        results[0].1, results[1].1,
        "two seeds trained the same model"
    );
}

/// A deterministic stream of damaged inputs: flipped, cut, repeated and random bytes.
fn mutate(original: &[u8], rng: &mut SeededRng) -> Vec<u8> {
    let mut bytes = original.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..=rng.below(8) {
                let at = rng.below(bytes.len().max(1));
                if let Some(byte) = bytes.get_mut(at) {
                    *byte ^= 1 << rng.below(8);
                }
            }
        }
        1 => bytes.truncate(rng.below(bytes.len().max(1))),
        2 => {
            let at = rng.below(bytes.len().max(1));
            let piece = bytes[at..].to_vec();
            bytes.splice(at..at, piece.into_iter().take(64));
        }
        _ => bytes = (0..rng.below(256)).map(|_| rng.below(256) as u8).collect(),
    }
    bytes
}

/// Numbers at the edges of what the fields hold or mean: zero, negatives, fractions where
/// counts go, sides too small for the network, past f32's range (read as infinity), and
/// integers past 32 and 64 bits (2^32 + 28 is 28 when cut to 32 bits).
const EDGE_NUMBERS: [&str; 14] = [
    "0",
    "1",
    "2",
    "-1",
    "0.5",
    "9",
    "10",
    "1e39",
    "-1e39",
    "1e-40",
    "1000000000",
    "4294967324",
    "18446744073709551615",
    "-9223372036854775808",
];

/// A place in `document` (a JSON pointer), reached by a random walk from its root that stops
/// at each level with probability 1/4: fields of every depth are changed, not mostly the
/// numbers of its longest arrays.
fn random_place(document: &Value, rng: &mut SeededRng) -> String {
    let mut place = String::new();
    let mut node = document;
    loop {
        let children: Vec<(String, &Value)> = match node {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| (index.to_string(), item))
                .collect(),
            Value::Object(fields) => fields
                .iter()
                .map(|(name, field)| (name.clone(), field))
                .collect(),
            _ => break,
        };
        if children.is_empty() || rng.below(4) == 0 {
            break;
        }
        let (key, child) = &children[rng.below(children.len())];
        place = format!("{place}/{key}");
        node = child;
    }
    place
}

fn strings_of(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(text) => into.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings_of(item, into)),
        Value::Object(fields) => fields.values().for_each(|field| strings_of(field, into)),
        _ => {}
    }
}

/// A number near `number`, of its kind (an integer stays an integer, which its field reads).
fn neighbour(number: &serde_json::Number, rng: &mut SeededRng) -> Value {
    let choice = rng.below(3);
    if let Some(n) = number.as_u64() {
        [
            json!(n.saturating_add(1)),
            json!(n.saturating_mul(2)),
            json!(-(n.min(i64::MAX as u64) as i64)),
        ][choice]
            .clone()
    } else if let Some(n) = number.as_i64() {
        [
            json!(n.saturating_add(1)),
            json!(n.saturating_mul(2)),
            json!(n.unsigned_abs()),
        ][choice]
            .clone()
    } else {
        let x = number.as_f64().unwrap_or_default();
        [json!(x + 1.0), json!(x * 2.0), json!(-x)][choice].clone()
    }
}

fn short(value: &Value) -> String {
    head(value.to_string(), 60)
}

fn head(text: String, chars: usize) -> String {
    text.chars().take(chars).collect()
}

/// Changes `document` at one random place, as a fuzzer that knows JSON would: a number to an
/// edge case or a neighbour, a string emptied, lengthened or made another of the document's
/// strings (a name taken twice), an array cut, emptied or with an element doubled, a field
/// removed, or any value made one of another type. Says what it did, to name a failing case.
fn mutate_json(document: &mut Value, rng: &mut SeededRng) -> String {
    let place = random_place(document, rng);
    let mut strings = vec!["x".to_string()];
    strings_of(document, &mut strings);
    let node = document
        .pointer_mut(&place)
        .expect("a place of the document");
    let before = short(node);
    let edge = |rng: &mut SeededRng| -> Value {
        serde_json::from_str(EDGE_NUMBERS[rng.below(EDGE_NUMBERS.len())]).unwrap()
    };
    if rng.below(6) == 0 {
        let others = [
            json!(null),
            json!("x"),
            json!(1),
            json!([]),
            json!({}),
            json!(true),
        ];
        *node = others[rng.below(others.len())].clone();
    } else {
        match node {
            Value::Number(number) => {
                *node = match rng.below(2) {
                    0 => edge(rng),
                    _ => neighbour(number, rng),
                }
            }
            Value::String(text) => match rng.below(3) {
                0 => text.clear(),
                1 => text.push('x'),
                _ => *text = strings[rng.below(strings.len())].clone(),
            },
            Value::Array(items) if !items.is_empty() => {
                let at = rng.below(items.len());
                match rng.below(4) {
                    0 => {
                        items.remove(at);
                    }
                    1 => items.insert(at, items[at].clone()),
                    2 => items.truncate(at),
                    _ => items.clear(),
                }
            }
            Value::Object(fields) if !fields.is_empty() => {
                let name = fields.keys().nth(rng.below(fields.len())).unwrap().clone();
                fields.remove(&name);
            }
            Value::Bool(flag) => *flag = !*flag,
            other => *other = edge(rng),
        }
    }
    let after = document.pointer(&place).map_or(String::new(), short);
    format!("{place}: {before} -> {after}")
}

/// Runs one fuzz case; a panic in it (a failed assertion too) fails the test naming the case.
fn without_panic<T>(case: &str, body: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(AssertUnwindSafe(body))
        .unwrap_or_else(|_| panic!("{case} panicked (the panic's message is above)"))
}

/// The current model's answer for two test images, whole.
fn compare_test_images(session: &Session) -> String {
    let replies = run(
        session,
        Command::Compare {
            left: ImageRef::Test { index: 0 },
            right: ImageRef::Test { index: 1 },
        },
    );
    let compared = find!(replies, reply @ Reply::Compared { .. } => reply);
    format!("{compared:?}")
}

/// A session with 200 training and 60 test digits and a model of one epoch that has a class
/// held out of training, enrolled from two images, and an unknown distance set; the model's
/// file, loaded again so the session stands as a reload would leave it.
fn session_with_enrolled_model() -> (Session, Vec<u8>) {
    let session = Session::new();
    run(&session, mnist(200, 60));
    let mut config = TrainConfig::new().with_epochs(1);
    config.held_out_classes = Some(vec!["9".into()]);
    run(&session, train(config));
    let enrolled = run(
        &session,
        Command::EnrolHeldOut {
            images_per_class: 2,
        },
    );
    find!(enrolled, Reply::OpenSet(_) => ());
    run(&session, Command::SetUnknownDistance { distance: 0.5 });
    let saved = run(&session, Command::SaveModel);
    let model = find!(saved, Reply::ModelFile { bytes, .. } => bytes.clone());
    load_again(&session, &model);
    (session, model)
}

fn load_again(session: &Session, model: &[u8]) {
    let loaded = run(
        session,
        Command::LoadModel {
            file_name: "digits.siamese".into(),
            bytes: model.to_vec(),
        },
    );
    find!(loaded, Reply::Analysis(_) => ());
}

#[test]
fn a_model_file_whose_enrolled_class_does_not_fit_the_model_is_refused_and_the_model_stays() {
    let (session, model) = session_with_enrolled_model();
    let before = compare_test_images(&session);
    // Beside the trained digits' prototypes of 128 values, a class enrolled from an embedding
    // of 2: every recognition once indexed past the class names, and the worker panicked.
    let (info, weights) = read_model_info(&model).unwrap();
    let mut metadata = serde_json::to_value(&info).unwrap();
    metadata["enrolled"] = json!([{ "name": "new", "embeddings": [[0.1, 0.2]] }]);
    let damaged = model_file(&serde_json::to_vec(&metadata).unwrap(), weights);
    assert_refused(
        &session,
        Command::LoadModel {
            file_name: "enrolled.siamese".into(),
            bytes: damaged,
        },
        "enrolled.siamese: the model file is damaged: the enrolled class \"new\" has an \
         embedding of 2 values, not 128",
    );
    assert_eq!(compare_test_images(&session), before);
}

/// Damaged copies of a model file tried by the fuzz test.
const MODEL_CASES: usize = 400;

#[test]
fn damaged_model_files_are_refused_with_their_name_or_load_as_models_that_answer() {
    let (session, model) = session_with_enrolled_model();
    let (info, weights) = read_model_info(&model).unwrap();
    assert_eq!((info.enrolled.len(), info.unknown_distance), (1, Some(0.5)));
    let metadata = serde_json::to_value(&info).unwrap();
    let before = compare_test_images(&session);
    let started = Instant::now();
    let mut rng = SeededRng::new(2026);
    let (mut refused, mut loaded) = (0, 0);
    for case in 0..MODEL_CASES {
        // Three in four change the metadata where a fuzzer of its structure would; the rest
        // any byte of the file.
        let (bytes, what) = if case % 4 == 3 {
            (mutate(&model, &mut rng), "its bytes".to_string())
        } else {
            let mut damaged = metadata.clone();
            let changes: Vec<String> = (0..=rng.below(3))
                .map(|_| mutate_json(&mut damaged, &mut rng))
                .collect();
            let metadata = serde_json::to_vec(&damaged).unwrap();
            (model_file(&metadata, weights), changes.join("; "))
        };
        let load = Command::LoadModel {
            file_name: "damaged.siamese".into(),
            bytes,
        };
        let usable = without_panic(&format!("model file {case} ({what})"), || {
            let replies = run(&session, load);
            match replies.first() {
                Some(Reply::Error { message, fatal }) => {
                    assert!(
                        message.starts_with("damaged.siamese: ") && !fatal,
                        "{message}"
                    );
                    false
                }
                Some(Reply::ModelLoaded { .. }) => {
                    compare_test_images(&session);
                    let evaluated = run(&session, Command::Evaluate);
                    find!(evaluated, Reply::Evaluated { .. } => ());
                    true
                }
                _ => panic!("neither refused nor loaded"),
            }
        });
        if usable {
            loaded += 1;
        } else {
            refused += 1;
        }
    }
    eprintln!(
        "{MODEL_CASES} damaged model files in {:.1} s, no panic: {refused} refused with the \
         file's name, {loaded} loaded and compared and evaluated",
        started.elapsed().as_secs_f64()
    );
    assert!(refused > 0 && loaded > 0);
    // The original loads again and answers as before.
    load_again(&session, &model);
    assert_eq!(compare_test_images(&session), before);
}

#[test]
fn damaged_images_are_named_among_the_skipped_files_and_the_rest_load() {
    let mut rng = SeededRng::new(2026);
    let image = png(28, |x, y| ((x * y) % 256) as u8);
    let files: Vec<UploadedFile> = (0..150)
        .map(|i| file(["a", "b"][i % 2], i, mutate(&image, &mut rng)))
        .collect();
    let count = files.len();
    let session = Session::new();
    let replies = upload(&session, 28, files);
    let summary = find!(replies, Reply::DatasetLoaded(summary) => summary);
    assert_eq!(
        summary.train_images + summary.test_images + summary.file_errors.len(),
        count
    );
    assert!(
        summary.file_errors.iter().all(|e| e.contains(".png: ")),
        "{:?}",
        summary.file_errors
    );
}

#[test]
fn messages_with_fields_missing_or_of_the_wrong_type_are_refused_naming_the_problem() {
    for (text, expected) in [
        (
            r#"{"id":5,"type":"train","backend":"cpu"}"#,
            "missing field `settings`",
        ),
        (r#"{"id":6,"type":"fly"}"#, "unknown variant `fly`"),
        (r#"{"type":"stop"}"#, "missing field `id`"),
        (
            r#"{"id":7,"type":"neighbours","query":{"kind":"test","index":-1},"k":3}"#,
            "invalid value",
        ),
    ] {
        let err = serde_json::from_str::<Request>(text)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
}

/// A recorder that presses Stop after a few batches of a run, as a user would: a fuzzed
/// message may ask for any number of epochs, and the test must stay quick.
struct Impatient<'s> {
    session: &'s Session,
    replies: Vec<Reply>,
    yields: usize,
}

/// Yields (one after each batch of a run) before [`Impatient`] presses Stop.
const BATCHES_BEFORE_STOP: usize = 6;

impl Host for Impatient<'_> {
    fn send(&mut self, reply: Reply) {
        self.replies.push(reply);
    }

    async fn fetch(&mut self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|err| err.to_string())
    }

    async fn webgpu(&mut self) -> WebGpuSupport {
        WebGpuSupport::Missing {
            reason: "the tests run without a GPU".into(),
        }
    }

    async fn yield_now(&mut self) {
        self.yields += 1;
        if self.yields == BATCHES_BEFORE_STOP {
            let mut ignored = Recorder::default();
            self.session.handle(Command::Stop, &mut ignored).await;
        }
    }

    fn memory_bytes(&self) -> f64 {
        0.0
    }
}

/// `command` made cheap enough for a fuzz case, of the same kind: at most 300 training and
/// 100 test digits, a benchmark of a few steps. Runs of any length are stopped by the host.
fn within_budget(command: Command) -> Command {
    match command {
        Command::UseMnist {
            url,
            train_images,
            test_images,
        } => Command::UseMnist {
            url,
            train_images: Some(train_images.unwrap_or(usize::MAX).min(300)),
            test_images: Some(test_images.unwrap_or(usize::MAX).min(100)),
        },
        Command::Benchmark { backend, job } => Command::Benchmark {
            backend,
            job: BenchmarkJob {
                batch: job.batch,
                warmup: job.warmup.min(2),
                steps: job.steps.min(3),
                layer_repeats: job.layer_repeats.min(1),
            },
        },
        other => other,
    }
}

/// Damaged messages tried by the fuzz test.
const MESSAGE_CASES: usize = 2000;

#[test]
fn every_damaged_message_that_parses_is_answered_by_a_live_session_without_a_panic() {
    let (session, model) = session_with_enrolled_model();
    let before = compare_test_images(&session);
    let image = json!(png(28, |x, y| ((x * y) % 256) as u8));
    let test_image = |index: usize| json!({ "kind": "test", "index": index });
    // One of each command, as a front end sends it.
    let valid = [
        json!({ "type": "use_mnist", "url": MNIST_PATH, "train_images": 200, "test_images": 60 }),
        json!({ "type": "begin_files", "total": 2, "channels": 1, "height": 28, "width": 28 }),
        json!({ "type": "add_files", "files": [
            { "class_name": "a", "file_name": "a/0.png", "bytes": image, "group": "a/@hold" },
            { "class_name": "b", "file_name": "b/0.png", "bytes": image, "key": "00000000000000ff" },
        ] }),
        json!({ "type": "end_files" }),
        json!({ "type": "train", "settings": {
            "epochs": "1", "batch_size": "32", "learning_rate": "0.001", "margin": "1",
            "validation_split": "0.2", "seed": "42", "held_out_classes": "9", "backend": "cpu",
            "workers": "1",
        } }),
        json!({ "type": "split_list", "settings": { "validation_split": "0.5", "seed": "7" } }),
        json!({ "type": "stop" }),
        json!({ "type": "compare", "left": test_image(0),
            "right": { "kind": "file", "file_name": "x.png", "bytes": image } }),
        json!({ "type": "neighbours", "query": test_image(3), "k": 5 }),
        json!({ "type": "save_model" }),
        json!({ "type": "evaluate" }),
        json!({ "type": "export_projector" }),
        json!({ "type": "export_projector_archive" }),
        json!({ "type": "benchmark", "backend": "cpu",
            "job": { "batch": 8, "warmup": 1, "steps": 2, "layer_repeats": 1 } }),
        json!({ "type": "enrol", "class_name": "new", "images": [test_image(0), test_image(1)] }),
        json!({ "type": "enrol_held_out", "images_per_class": 2 }),
        json!({ "type": "set_unknown_distance", "distance": 0.5 }),
        json!({ "type": "load_model", "file_name": "m.siamese", "bytes": [83, 73, 65, 77] }),
    ];
    for message in &valid {
        let mut request = message.clone();
        request["id"] = json!(1);
        serde_json::from_value::<Request>(request).expect("a message a front end sends");
    }
    let started = Instant::now();
    let mut rng = SeededRng::new(2026);
    let (mut dispatched, mut unparsed) = (0, 0);
    // What the session was sent last: a case may fail for what came before it.
    let mut history: Vec<String> = Vec::new();
    for case in 0..MESSAGE_CASES {
        let mut message = valid[case % valid.len()].clone();
        message["id"] = json!(case);
        // One in eight goes as it is, one in eight with any byte changed, the rest with its
        // structure changed once or twice.
        let (text, what) = match rng.below(8) {
            0 => (message.to_string().into_bytes(), "as it is".to_string()),
            1 => (
                mutate(message.to_string().as_bytes(), &mut rng),
                "its bytes".to_string(),
            ),
            _ => {
                let changes: Vec<String> = (0..=rng.below(2))
                    .map(|_| mutate_json(&mut message, &mut rng))
                    .collect();
                (message.to_string().into_bytes(), changes.join("; "))
            }
        };
        let request = match serde_json::from_slice::<Request>(&text) {
            Ok(request) => request,
            Err(err) => {
                assert!(!err.to_string().is_empty());
                unparsed += 1;
                continue;
            }
        };
        let command = within_budget(request.command);
        let sent = head(format!("{command:?}"), 150);
        let after = &history[history.len().saturating_sub(3)..];
        let case = format!("message {case} ({what}): {sent}, after {after:?}");
        history.push(sent);
        let expects_answer = !matches!(command, Command::Stop);
        without_panic(&case, || {
            let mut host = Impatient {
                session: &session,
                replies: Vec::new(),
                yields: 0,
            };
            pollster::block_on(session.handle(command, &mut host));
            // Every request but Stop is answered: its last reply is no mere progress event.
            let last = host.replies.last();
            let answer = last.is_some_and(|reply| !reply.is_event());
            assert_eq!(answer, expects_answer, "{}", head(format!("{last:?}"), 200));
        });
        dispatched += 1;
    }
    eprintln!(
        "{MESSAGE_CASES} damaged messages in {:.1} s, no panic: {dispatched} parsed and \
         handled by the session, {unparsed} refused by the parser",
        started.elapsed().as_secs_f64()
    );
    // Given its data and model again, the session answers as it did.
    run(&session, mnist(200, 60));
    load_again(&session, &model);
    assert_eq!(compare_test_images(&session), before);
}

#[test]
fn a_model_knows_what_it_saw_and_leaves_it_out_of_its_figures_after_the_data_changes() {
    let session = Session::new();
    upload(&session, 28, three_classes(50));
    let trained = run(&session, train(TrainConfig::new().with_epochs(1)));
    let report = find!(trained, Reply::Done(report) => report);
    let analysis = find!(trained, Reply::Analysis(analysis) => analysis);
    // Just trained: nothing of the test part was seen, and the data is what it trained on.
    assert_eq!(report.result.test_pairs, 2 * 30);
    assert_eq!(
        (
            analysis.seen_images_left_out,
            analysis.training_data_changed
        ),
        (Some(0), Some(false))
    );
    let before = split_list(&session);
    let saved = run(&session, Command::SaveModel);
    let model = find!(saved, Reply::ModelFile { bytes, .. } => bytes.clone());

    // Ten new images of classes a and b, a copy of a training image of a under a new name,
    // and a test image of c removed: c's share stays 10 of its now 49 images, so the next of
    // its training images in rank becomes a test image, one the model trained on.
    let trained_image = before
        .iter()
        .find(|(_, class, part)| class == "a" && part == "train")
        .unwrap();
    let removed = &before
        .iter()
        .find(|(_, class, part)| class == "c" && part == "test")
        .unwrap()
        .0;
    let trained_index: usize = trained_image.0[2..]
        .trim_end_matches(".png")
        .parse()
        .unwrap();
    let mut files: Vec<UploadedFile> = three_classes(50)
        .into_iter()
        .filter(|file| &file.file_name != removed)
        .collect();
    files.extend((150..160).map(|i| file(["a", "b"][i % 2], i, drawn(i % 2, i / 2 + 100))));
    files.push(UploadedFile {
        file_name: "a/copy.png".into(),
        ..file("a", 0, drawn(0, trained_index / 3))
    });
    let replies = upload(&session, 28, files.clone());
    let analysis = find!(replies, Reply::Analysis(analysis) => analysis);
    assert_eq!(analysis.training_data_changed, Some(true));
    let after = split_list(&session);
    // No image the model trained or validated on is a test image of its figures: any that the
    // edit moved into the test part is listed as seen, and counted as left out.
    let seen_before = |path: &str| {
        before
            .iter()
            .any(|(p, _, part)| p == path && (part == "train" || part == "validation"))
    };
    assert!(
        after
            .iter()
            .all(|(path, _, part)| part != "test" || !seen_before(path))
    );
    let seen = after.iter().filter(|(_, _, part)| part == "seen").count();
    assert!(
        seen >= 1,
        "the edit moved no training image into the test part"
    );
    assert!(
        after
            .iter()
            .filter(|(_, _, part)| part == "seen")
            .all(|(path, _, _)| seen_before(path))
    );
    assert_eq!(analysis.seen_images_left_out, Some(seen));
    // The copy falls where its original is.
    assert_eq!(
        part_of(&after, "a/copy.png"),
        part_of(&after, &trained_image.0)
    );
    let evaluated = run(&session, Command::Evaluate);
    let (pairs, left_out) = find!(evaluated, Reply::Evaluated { test_pairs, seen_images_left_out, .. } => (*test_pairs, *seen_images_left_out));
    assert_eq!((pairs, left_out), (analysis.test_pairs, Some(seen)));
    assert_eq!(
        pairs,
        2 * (after.iter().filter(|(_, _, p)| p == "test").count())
    );

    // The saved model, loaded into another session with the changed data, says the same.
    let other = Session::new();
    upload(&other, 28, files);
    let loaded = run(
        &other,
        Command::LoadModel {
            file_name: "saved.siamese".into(),
            bytes: model.clone(),
        },
    );
    let analysis = find!(loaded, Reply::Analysis(analysis) => analysis);
    assert_eq!(
        (
            analysis.seen_images_left_out,
            analysis.training_data_changed
        ),
        (Some(seen), Some(true))
    );
    // Compared, a training image is known as seen, a new one is not.
    let compared = run(
        &session,
        Command::Compare {
            left: ImageRef::File {
                file_name: "x.png".into(),
                bytes: drawn(0, trained_index / 3),
            },
            right: ImageRef::File {
                file_name: "y.png".into(),
                bytes: drawn(0, 999),
            },
        },
    );
    let seen =
        find!(compared, Reply::Compared { left_seen, right_seen, .. } => (*left_seen, *right_seen));
    assert_eq!(seen, (Some(true), Some(false)));
}

#[test]
fn a_model_file_that_does_not_say_what_it_saw_is_used_and_said_to_be_unchecked() {
    let session = Session::new();
    upload(&session, 28, three_classes(20));
    run(&session, train(TrainConfig::new().with_epochs(1)));
    let saved = run(&session, Command::SaveModel);
    let model = find!(saved, Reply::ModelFile { bytes, .. } => bytes.clone());
    // The file as an earlier version wrote it: the same, without the images it saw.
    let (info, weights) = siamese_web::model_file::read_model_info(&model).unwrap();
    let mut metadata = serde_json::to_value(&info).unwrap();
    metadata.as_object_mut().unwrap().remove("seen_images");
    let metadata = serde_json::to_vec(&metadata).unwrap();
    let mut older = b"SIAMWEB\x01".to_vec();
    older.extend((metadata.len() as u32).to_le_bytes());
    older.extend((weights.len() as u64).to_le_bytes());
    older.extend(&metadata);
    older.extend(weights);
    let loaded = run(
        &session,
        Command::LoadModel {
            file_name: "older.siamese".into(),
            bytes: older,
        },
    );
    let analysis = find!(loaded, Reply::Analysis(analysis) => analysis);
    assert_eq!(
        (
            analysis.seen_images_left_out,
            analysis.training_data_changed
        ),
        (None, None)
    );
    assert!(analysis.pair_acc.is_some());
}

#[test]
fn camera_holds_and_group_folders_fall_on_one_side_of_the_split_whole() {
    // Class a: 5 holds of 7 near-identical frames each; class b: 35 single images.
    let mut files: Vec<UploadedFile> = (0..35)
        .map(|i| UploadedFile {
            group: Some(format!("hold {}", i / 7)),
            ..file("a", i, drawn(0, i))
        })
        .collect();
    files.extend((0..35).map(|i| file("b", 100 + i, drawn(1, i))));
    let session = Session::new();
    let loaded = upload(&session, 28, files);
    let summary = find!(loaded, Reply::DatasetLoaded(summary) => summary);
    // One hold (7 frames) of class a and 7 of class b's images are test images.
    assert_eq!((summary.test_images, summary.test_groups), (14, 1));
    assert_eq!((summary.train_images, summary.train_groups), (56, 4));
    let list = split_list(&session);
    for hold in 0..5 {
        let parts: Vec<&str> = (hold * 7..hold * 7 + 7)
            .map(|i| part_of(&list, &format!("a/{i}.png")))
            .collect();
        assert!(parts.iter().all(|part| *part == parts[0]), "{parts:?}");
    }
}

#[test]
fn an_image_under_two_classes_is_named_with_both_and_falls_on_one_side() {
    let mut files = three_classes(10);
    files.push(UploadedFile {
        file_name: "c/same-as-a0.png".into(),
        ..file("c", 0, drawn(0, 0))
    });
    let session = Session::new();
    let loaded = upload(&session, 28, files);
    let summary = find!(loaded, Reply::DatasetLoaded(summary) => summary);
    assert_eq!(summary.duplicates.len(), 1, "{:?}", summary.duplicates);
    let warning = &summary.duplicates[0];
    assert!(
        warning.contains("a/0.png (a)") && warning.contains("c/same-as-a0.png (c)"),
        "{warning}"
    );
    let list = split_list(&session);
    assert_eq!(
        part_of(&list, "a/0.png"),
        part_of(&list, "c/same-as-a0.png")
    );
}

#[test]
fn data_the_model_trained_on_whole_gives_no_test_figure_and_says_why() {
    let session = Session::new();
    upload(&session, 28, three_classes(20));
    run(&session, train(TrainConfig::new().with_epochs(1)));
    let list = split_list(&session);
    // Only the images the model trained or validated on: their test part is all seen.
    let seen: Vec<UploadedFile> = three_classes(20)
        .into_iter()
        .filter(|file| part_of(&list, &file.file_name) != "test")
        .collect();
    let replies = upload(&session, 28, seen);
    let summary = find!(replies, Reply::DatasetLoaded(summary) => summary);
    let analysis = find!(replies, Reply::Analysis(analysis) => analysis);
    assert!(summary.test_images > 0);
    assert_eq!(analysis.seen_images_left_out, Some(summary.test_images));
    assert_eq!(
        (analysis.test_pairs, analysis.pair_acc, analysis.knn_acc),
        (0, None, None)
    );
    let note = analysis.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("trained or validated on every test image"),
        "{note}"
    );
}

#[test]
fn a_model_of_the_same_images_under_other_classes_is_out_of_date() {
    let session = Session::new();
    upload(&session, 28, three_classes(20));
    run(&session, train(TrainConfig::new().with_epochs(1)));
    // The classes a and b swapped: the same pixels, other labels.
    let swapped: Vec<UploadedFile> = three_classes(20)
        .into_iter()
        .map(|file| {
            let class = match file.class_name.as_str() {
                "a" => "b",
                "b" => "a",
                other => other,
            };
            UploadedFile {
                class_name: class.into(),
                ..file
            }
        })
        .collect();
    let replies = upload(&session, 28, swapped);
    let analysis = find!(replies, Reply::Analysis(analysis) => analysis);
    assert_eq!(analysis.training_data_changed, Some(true));
    assert_eq!(analysis.seen_images_left_out, Some(0));
}

#[test]
fn a_test_part_of_held_out_classes_only_says_so() {
    // a and b, two images each, have no test image; c, held out, has its two.
    let files: Vec<UploadedFile> = (0..4)
        .map(|i| file(["a", "b"][i % 2], i, drawn(i % 2, i)))
        .chain((0..10).map(|i| file("c", 10 + i, drawn(2, i))))
        .collect();
    let session = Session::new();
    upload(&session, 28, files);
    let mut config = TrainConfig::new().with_epochs(1);
    config.held_out_classes = Some(vec!["c".into()]);
    let replies = run(&session, train(config));
    let analysis = find!(replies, Reply::Analysis(analysis) => analysis);
    assert_eq!((analysis.test_images, analysis.knn_acc), (0, None));
    let note = analysis.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("holds images of the held-out classes only"),
        "{note}"
    );
}
