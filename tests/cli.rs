//! The command line as a user runs it: a folder of digit images (one folder per class, broken
//! files among them) trained, evaluated, exported for the Embedding Projector and compared with
//! the `siamese` binary, each figure checked against the others. Native only.
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use siamese_web::data::mnist::parse_mnist;

const MNIST: &[u8] = include_bytes!("../assets/mnist-10k.bin.gz");
const CLASSES: [usize; 3] = [0, 1, 7];
const PER_CLASS: usize = 100;

/// `root/digits/<digit>/<n>.png` from the built-in digits, and three files that are no images.
fn digit_folder(root: &Path) -> PathBuf {
    let digits = parse_mnist(MNIST).unwrap();
    let folder = root.join("digits");
    for digit in CLASSES {
        let class = folder.join(digit.to_string());
        std::fs::create_dir_all(&class).unwrap();
        let members = (0..digits.len()).filter(|&i| digits.labels()[i] == digit);
        for (n, index) in members.take(PER_CLASS).enumerate() {
            let pixels = digits
                .image(index)
                .into_iter()
                .map(|v| (v * 255.0).round() as u8);
            let image = image::GrayImage::from_raw(28, 28, pixels.collect()).unwrap();
            image.save(class.join(format!("{n}.png"))).unwrap();
        }
    }
    std::fs::write(folder.join("0/broken.png"), b"not pixels at all").unwrap();
    std::fs::write(folder.join("1/empty.jpg"), b"").unwrap();
    std::fs::write(folder.join("7/.DS_Store"), b"hidden: never read").unwrap();
    folder
}

struct Run {
    success: bool,
    stderr: String,
    /// The last line of stdout, as JSON.
    line: Value,
    stdout_lines: usize,
}

fn siamese(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_siamese"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    Run {
        stdout_lines: stdout.lines().count(),
        success: output.status.success(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        line: stdout
            .lines()
            .last()
            .map_or(Value::Null, |line| serde_json::from_str(line).unwrap()),
    }
}

fn number(line: &Value, field: &str) -> f64 {
    line[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no {field} in {line}"))
}

#[test]
fn a_folder_is_trained_evaluated_embedded_and_compared_from_the_command_line() {
    let root = std::env::temp_dir().join(format!("siamese-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = digit_folder(&root);
    let (data, model, out) = (
        data.to_str().unwrap(),
        root.join("digits.siamese"),
        root.join("projector"),
    );
    let (model, out) = (model.to_str().unwrap(), out.to_str().unwrap());

    let trained = siamese(&["train", "--data", data, "--epochs", "4", "--save", model]);
    assert!(trained.success, "{}", trained.stderr);
    for expected in [
        "skipped digits/0/broken.png: not an image",
        "skipped digits/1/empty.jpg: the file is empty",
        "3 classes: 0 (100), 1 (100), 7 (100)",
        "2 files skipped",
        "model saved to",
    ] {
        assert!(
            trained.stderr.contains(expected),
            "{expected:?} not in {}",
            trained.stderr
        );
    }
    assert!(!trained.stderr.contains("DS_Store"), "{}", trained.stderr);
    let result = &trained.line;
    // 20 % of each class held out for the test: 60 images, each with a similar and a
    // dissimilar partner.
    assert_eq!(result["test_pairs"], 120, "{result}");
    assert!(number(result, "test_acc_best") > 0.85, "{result}");
    assert!(number(result, "auc") > 0.9, "{result}");
    assert!(number(result, "pairs_per_s") > 0.0, "{result}");
    assert!(number(result, "knn_acc") > 0.85, "{result}");

    // The model file, read back, gives the run's own figures on the same test pairs.
    let evaluated = siamese(&["evaluate", "--model", model, "--data", data]);
    assert!(evaluated.success, "{}", evaluated.stderr);
    for field in [
        "test_pairs",
        "test_acc",
        "best_threshold",
        "test_acc_best",
        "auc",
        "knn_acc",
    ] {
        assert_eq!(
            evaluated.line[field], result[field],
            "{field}: {}",
            evaluated.line
        );
    }

    let embedded = siamese(&["embed", "--model", model, "--data", data, "--out", out]);
    assert!(embedded.success, "{}", embedded.stderr);
    assert_eq!(embedded.line["rows"], 300);
    let read = |name: &str| std::fs::read_to_string(Path::new(out).join(name)).unwrap();
    let vectors = read("vectors.tsv");
    assert_eq!(vectors.lines().count(), 300);
    assert!(vectors.lines().all(|row| row.split('\t').count() == 128));
    let metadata = read("metadata.tsv");
    assert_eq!(metadata.lines().count(), 301);
    assert_eq!(metadata.lines().next(), Some("class\tpart"));
    assert_eq!(
        metadata
            .lines()
            .filter(|row| row.ends_with("\ttest"))
            .count(),
        60
    );
    // 300 images in 18 columns and 17 rows of 28-pixel cells.
    let sprite = image::open(Path::new(out).join("sprite.png")).unwrap();
    assert_eq!((sprite.width(), sprite.height()), (18 * 28, 17 * 28));
    assert!(read("projector_config.json").contains("\"tensorPath\":\"vectors.tsv\""));

    let image = |class: usize, n: usize| format!("{data}/{class}/{n}.png");
    let same = siamese(&["compare", "--model", model, &image(1, 0), &image(1, 0)]);
    assert!(same.success, "{}", same.stderr);
    assert!(number(&same.line, "distance") < 1e-3, "{}", same.line);
    assert_eq!(same.line["dissimilar"], false);
    assert_eq!(same.line["threshold"], result["best_threshold"]);
    let other = siamese(&["compare", "--model", model, &image(0, 1), &image(1, 1)]);
    assert!(other.success, "{}", other.stderr);
    assert!(number(&other.line, "distance") > number(&same.line, "distance"));

    // Wrong inputs are refused with the reason.
    let not_a_model = siamese(&["evaluate", "--model", &image(0, 2), "--data", data]);
    assert!(!not_a_model.success);
    assert!(
        not_a_model
            .stderr
            .contains("this is not a siamese-web model file"),
        "{}",
        not_a_model.stderr
    );
    let one_class = siamese(&["train", "--data", &format!("{data}/7")]);
    assert!(!one_class.success);
    assert!(
        one_class.stderr.contains("1 class: 7 (100)")
            && one_class
                .stderr
                .contains("error: cannot train on this set: all images are of one class (7)"),
        "{}",
        one_class.stderr
    );
    // The model of three digits, on all ten of the built-in ones; one of 32x32 is refused there.
    let all_digits = siamese(&["evaluate", "--model", model, "--mnist"]);
    assert!(all_digits.success, "{}", all_digits.stderr);
    assert_eq!(all_digits.line["test_pairs"], 4000);
    let larger = root.join("larger.siamese");
    let larger = larger.to_str().unwrap();
    let args = [
        "train",
        "--data",
        data,
        "--image-size",
        "32x32-grey",
        "--epochs",
        "1",
    ];
    assert!(siamese(&[&args[..], &["--save", larger]].concat()).success);
    let refused = siamese(&["evaluate", "--model", larger, "--mnist"]);
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("not the digits' 28x28 grey"),
        "{}",
        refused.stderr
    );
    let usage = siamese(&["train", "--data", data, "--epochs", "none"]);
    assert!(
        !usage.success && usage.stderr.contains("--epochs none"),
        "{}",
        usage.stderr
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn images_kept_on_disk_give_the_same_figures_and_are_decoded_once() {
    let root = std::env::temp_dir().join(format!("siamese-cli-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = digit_folder(&root);
    let (cache, model) = (root.join("cache"), root.join("digits.siamese"));
    let (data, cache, model) = (
        data.to_str().unwrap(),
        cache.to_str().unwrap(),
        model.to_str().unwrap(),
    );
    let train = ["train", "--data", data, "--epochs", "2"];
    let in_memory = siamese(&train);
    assert!(in_memory.success, "{}", in_memory.stderr);
    let on_disk = siamese(&[&train[..], &["--cache", cache, "--save", model]].concat());
    assert!(on_disk.success, "{}", on_disk.stderr);
    assert!(
        on_disk.stderr.contains("0 images of this size stored"),
        "{}",
        on_disk.stderr
    );
    for field in ["test_pairs", "test_acc", "test_acc_best", "auc", "knn_acc"] {
        assert_eq!(on_disk.line[field], in_memory.line[field], "{field}");
    }
    // The 300 digits, a byte per pixel; the two broken files are not kept.
    let pixels = Path::new(cache).join("28x28-grey.v1.pixels");
    assert_eq!(std::fs::metadata(pixels).unwrap().len(), 300 * 28 * 28);

    // A later run finds every image (a renamed file too) and decodes none of them again.
    std::fs::rename(format!("{data}/7/0.png"), format!("{data}/7/renamed.png")).unwrap();
    let evaluated = siamese(&[
        "evaluate", "--model", model, "--data", data, "--cache", cache,
    ]);
    assert!(evaluated.success, "{}", evaluated.stderr);
    assert!(
        evaluated
            .stderr
            .contains("300 of the images were found in the image cache")
            && evaluated.stderr.contains("2 files skipped"),
        "{}",
        evaluated.stderr
    );
    assert_eq!(evaluated.line["test_pairs"], on_disk.line["test_pairs"]);
    let refused = siamese(&["evaluate", "--model", model, "--mnist", "--cache", cache]);
    assert!(
        !refused.success && refused.stderr.contains("the built-in digits need none"),
        "{}",
        refused.stderr
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// The digits, sampled for a run of seconds.
const QUICK_DIGITS: [&str; 7] = [
    "--mnist",
    "--train-images",
    "2000",
    "--test-images",
    "1000",
    "--seed",
    "7",
];

#[test]
fn burn_train_on_one_device_and_resumed_from_its_checkpoints_gives_the_sessions_figures() {
    let root = std::env::temp_dir().join(format!("siamese-cli-burn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (straight, resumed) = (root.join("straight"), root.join("resumed"));
    let (straight, resumed) = (straight.to_str().unwrap(), resumed.to_str().unwrap());
    let train = |epochs: &str, more: &[&str]| {
        let run = siamese(&[&["train", "--epochs", epochs], &QUICK_DIGITS[..], more].concat());
        assert!(run.success, "{}", run.stderr);
        run
    };

    // One worker, as burn-train on one device.
    let own_loop = train("2", &["--workers", "1"]);
    let burn = train("2", &["--checkpoints", straight]);
    assert!(
        burn.stderr.contains("burn-train's engine on one device"),
        "{}",
        burn.stderr
    );
    assert_eq!(burn.stdout_lines, 1, "burn-train printed to stdout");
    assert!(
        number(&own_loop.line, "test_acc") > 0.85,
        "{}",
        own_loop.line
    );
    // Same pairs, batches, initial weights and Adam: the same model, to the last digit.
    for field in ["test_acc", "auc", "best_threshold", "knn_acc"] {
        assert_eq!(own_loop.line[field], burn.line[field], "{field}");
    }

    let first = train("1", &["--checkpoints", resumed]);
    assert_eq!(number(&first.line, "epochs"), 1.0);
    let second = train("2", &["--checkpoints", resumed]);
    assert!(
        second.stderr.contains("resuming after epoch 1") && !second.stderr.contains("epoch 1 done"),
        "{}",
        second.stderr
    );
    assert_eq!(number(&second.line, "epochs"), 2.0);
    for field in ["test_acc", "auc", "best_threshold", "knn_acc"] {
        assert_eq!(second.line[field], burn.line[field], "{field}");
    }

    let other = siamese(
        &[
            &["train", "--epochs", "3", "--lr", "0.01"],
            &QUICK_DIGITS[..],
            &["--checkpoints", resumed],
        ]
        .concat(),
    );
    assert!(!other.success);
    assert!(
        other.stderr.contains("a run with other settings"),
        "{}",
        other.stderr
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn two_cpu_devices_train_data_parallel_as_two_workers_do() {
    let train = |more: &[&str]| {
        let run = siamese(&[&["train", "--epochs", "2"], &QUICK_DIGITS[..], more].concat());
        assert!(run.success, "{}", run.stderr);
        run
    };
    let workers = train(&["--workers", "2"]);
    let devices = train(&["--device", "cpu,cpu"]);
    assert_eq!(devices.line["backend"], "cpu,cpu");
    assert!(
        devices.stderr.contains("2 devices, each with its share"),
        "{}",
        devices.stderr
    );
    assert_eq!(devices.stdout_lines, 1, "burn-train printed to stdout");
    // Each device takes half of every batch of the session's loop, as each of two workers does,
    // weighted by its pairs, and two gradients sum the same in either order: the same run.
    let accuracy = number(&devices.line, "test_acc");
    assert!(accuracy > 0.85, "{}", devices.line);
    for figure in ["test_acc", "auc", "best_threshold"] {
        assert_eq!(
            number(&devices.line, figure),
            number(&workers.line, figure),
            "{figure}: two devices {}, two workers {}",
            devices.line,
            workers.line
        );
    }
}

#[test]
fn held_out_digits_are_unknown_then_enrolled_from_the_command_line() {
    let refused = siamese(&["train", "--mnist", "--enrol-held-out", "5"]);
    assert!(!refused.success);
    assert!(
        refused
            .stderr
            .contains("--enrol-held-out enrols the classes of --hold-out")
    );
    let missing = siamese(&["train", "--mnist", "--hold-out", "cat", "--epochs", "1"]);
    assert!(!missing.success);
    assert!(
        missing.stderr.contains("no class \"cat\" to hold out"),
        "{}",
        missing.stderr
    );

    let run = siamese(&[
        "train",
        "--mnist",
        "--train-images",
        "1500",
        "--test-images",
        "500",
        "--epochs",
        "1",
        "--hold-out",
        "8,9",
        "--enrol-held-out",
        "5",
    ]);
    assert!(run.success, "{}", run.stderr);
    let open_set = &run.line["open_set"];
    assert_eq!(
        open_set["unknowns"]["classes"],
        serde_json::json!(["8", "9"])
    );
    assert!(number(open_set, "eer") < 0.5, "{open_set}");
    let enrolled = &run.line["after_enrolment"];
    assert_eq!(enrolled["enrolled"][1]["name"], "9", "{enrolled}");
    assert_eq!(enrolled["enrolled"][1]["images"], 5, "{enrolled}");
    assert!(number(enrolled, "enrolled_acc") > 0.3, "{enrolled}");
}
