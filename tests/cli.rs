//! The command line as a user runs it: a folder of digit images (one folder per class, broken
//! files among them) trained, evaluated, exported for the Embedding Projector and compared with
//! the `siamese` binary, each figure checked against the others. Native only.
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use siamese_web::data::mnist::parse_mnist;
use siamese_web::model_file::{model_file, read_model_info};

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
    /// The exit code: 1 for an error the command line reports, 101 for a panic.
    code: Option<i32>,
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
        code: output.status.code(),
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
    assert_eq!(embedded.line["seen_images_left_out"], 0);
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

    // A model file with a class enrolled from an embedding of 2 values beside the model's 128
    // once made both panic (exit code 101): refused with the reason.
    let saved = std::fs::read(model).unwrap();
    let (info, weights) = read_model_info(&saved).unwrap();
    let mut metadata = serde_json::to_value(&info).unwrap();
    metadata["enrolled"] = json!([{ "name": "new", "embeddings": [[0.1, 0.2]] }]);
    let enrolled = root.join("enrolled.siamese");
    let bytes = model_file(&serde_json::to_vec(&metadata).unwrap(), weights);
    std::fs::write(&enrolled, bytes).unwrap();
    let enrolled = enrolled.to_str().unwrap();
    for args in [
        ["evaluate", "--model", enrolled, "--data", data],
        ["compare", "--model", enrolled, &image(0, 1), &image(1, 1)],
    ] {
        let refused = siamese(&args);
        assert_eq!(refused.code, Some(1), "{}", refused.stderr);
        let expected = format!(
            "error: {enrolled}: the model file is damaged: the enrolled class \"new\" has an \
             embedding of 2 values, not 128"
        );
        assert!(refused.stderr.contains(&expected), "{}", refused.stderr);
    }

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
    // Its digits came from the built-in ones: those of them in their test part are left out,
    // and the figures say so.
    let all_digits = siamese(&["evaluate", "--model", model, "--mnist"]);
    assert!(all_digits.success, "{}", all_digits.stderr);
    let left_out = number(&all_digits.line, "seen_images_left_out");
    assert!(left_out > 0.0, "{}", all_digits.line);
    assert_eq!(
        number(&all_digits.line, "test_pairs"),
        2.0 * (2000.0 - left_out)
    );
    assert_eq!(all_digits.line["training_data_changed"], true);
    assert!(
        all_digits.stderr.contains(&format!(
            "note: {left_out} test images were left out: the model trained on them"
        )),
        "{}",
        all_digits.stderr
    );
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
        !usage.success
            && usage
                .stderr
                .contains("--epochs is \"none\": it must be a whole number, 1 or more"),
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
    let pixels = Path::new(cache).join("28x28-grey.v2.pixels");
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
    // The cache keeps each image's key: the model knows its images there too.
    assert_eq!(evaluated.line["seen_images_left_out"], 0);
    assert_eq!(evaluated.line["training_data_changed"], false);
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

/// `siamese split` of `args`: each line's path, class and part.
fn split(args: &[&str]) -> Vec<(String, String, String)> {
    let output = Command::new(env!("CARGO_BIN_EXE_siamese"))
        .arg("split")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("path\tclass\tpart"));
    lines
        .map(|line| match line.split('\t').collect::<Vec<_>>()[..] {
            [path, class, part] => (path.into(), class.into(), part.into()),
            _ => panic!("{line}"),
        })
        .collect()
}

#[test]
fn a_folder_changed_after_training_is_evaluated_without_the_images_the_model_saw() {
    let root = std::env::temp_dir().join(format!("siamese-cli-changed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let folder = digit_folder(&root);
    let data = folder.to_str().unwrap();
    let model = root.join("digits.siamese");
    let model = model.to_str().unwrap();
    let trained = siamese(&["train", "--data", data, "--epochs", "1", "--save", model]);
    assert!(trained.success, "{}", trained.stderr);
    // Every usable image, by its path on disk, with its class and part.
    let before = split(&["--data", data]);
    assert_eq!(before.len(), 300);
    for (path, class, part) in &before {
        assert!(Path::new(path).is_file(), "{path}");
        assert_eq!(
            Path::new(path)
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str(),
            Some(class.as_str())
        );
        assert!(
            ["train", "validation", "test"].contains(&part.as_str()),
            "{part}"
        );
    }
    let count =
        |list: &[(String, String, String)], part: &str| list.iter().filter(|l| l.2 == part).count();
    assert_eq!(count(&before, "test"), 60);

    // Ten more digits of class 0, a copy of a training image under another name, and a test
    // image of class 7 removed: 7's share stays 20 of its now 99 images, so the next of its
    // training images in rank becomes a test image, one the model trained on.
    let digits = parse_mnist(MNIST).unwrap();
    let zeros = (0..digits.len()).filter(|&i| digits.labels()[i] == 0);
    for (n, index) in zeros.skip(PER_CLASS).take(10).enumerate() {
        let pixels = digits
            .image(index)
            .into_iter()
            .map(|v| (v * 255.0).round() as u8);
        let image = image::GrayImage::from_raw(28, 28, pixels.collect()).unwrap();
        image.save(folder.join(format!("0/new-{n}.png"))).unwrap();
    }
    let original = &before
        .iter()
        .find(|(_, _, part)| part == "train")
        .unwrap()
        .0;
    let copy = Path::new(original).with_file_name("copy.png");
    std::fs::copy(original, &copy).unwrap();
    let removed = &before
        .iter()
        .find(|(_, class, part)| class == "7" && part == "test")
        .unwrap()
        .0;
    std::fs::remove_file(removed).unwrap();
    let after = split(&["--data", data]);
    assert_eq!(after.len(), 310);
    let part_of = |path: &str| &after.iter().find(|l| l.0 == path).unwrap().2;
    assert_eq!(part_of(copy.to_str().unwrap()), part_of(original));

    // The test images the model trained or validated on are left out of its figures.
    let seen = after
        .iter()
        .filter(|(path, _, part)| {
            part == "test" && before.iter().any(|(p, _, was)| p == path && was != "test")
        })
        .count();
    assert!(
        seen >= 1,
        "the edit moved no training image into the test part"
    );
    let evaluated = siamese(&["evaluate", "--model", model, "--data", data]);
    assert!(evaluated.success, "{}", evaluated.stderr);
    assert_eq!(evaluated.line["seen_images_left_out"], seen);
    assert!(
        evaluated.stderr.contains(&format!(
            "note: {seen} test images were left out: the model trained on them"
        )),
        "{}",
        evaluated.stderr
    );
    assert_eq!(evaluated.line["training_data_changed"], true);
    assert_eq!(
        evaluated.line["test_pairs"],
        2 * (count(&after, "test") - seen)
    );
    assert_eq!(
        evaluated.line["test_pairs_similar"],
        count(&after, "test") - seen
    );
    // Exported for the projector, they are a part of their own.
    let out = root.join("projector");
    let embedded = siamese(&[
        "embed",
        "--model",
        model,
        "--data",
        data,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(embedded.success, "{}", embedded.stderr);
    assert_eq!(embedded.line["seen_images_left_out"], seen);
    let metadata = std::fs::read_to_string(out.join("metadata.tsv")).unwrap();
    assert_eq!(
        metadata
            .lines()
            .filter(|row| row.ends_with("\tseen"))
            .count(),
        seen
    );
    assert_eq!(metadata.lines().count(), 1 + 310);
    // Compared, the copy is an image the model trained on; a new digit is not.
    let compared = siamese(&[
        "compare",
        "--model",
        model,
        copy.to_str().unwrap(),
        folder.join("0/new-0.png").to_str().unwrap(),
    ]);
    assert!(compared.success, "{}", compared.stderr);
    assert_eq!(
        (
            compared.line["left_seen"].clone(),
            compared.line["right_seen"].clone()
        ),
        (true.into(), false.into())
    );

    // The same model as an earlier version wrote it, without the images it trained on: its
    // figures are given, and said to be unchecked.
    let bytes = std::fs::read(model).unwrap();
    let (info, weights) = read_model_info(&bytes).unwrap();
    let mut metadata = serde_json::to_value(&info).unwrap();
    metadata.as_object_mut().unwrap().remove("seen_images");
    let older = root.join("older.siamese");
    std::fs::write(
        &older,
        model_file(&serde_json::to_vec(&metadata).unwrap(), weights),
    )
    .unwrap();
    let older = older.to_str().unwrap();
    let unchecked = siamese(&["evaluate", "--model", older, "--data", data]);
    assert!(unchecked.success, "{}", unchecked.stderr);
    assert_eq!(unchecked.line["seen_images_left_out"], Value::Null);
    assert_eq!(unchecked.line["training_data_changed"], Value::Null);
    assert_eq!(unchecked.line["test_pairs"], 2 * count(&after, "test"));
    assert!(
        unchecked
            .stderr
            .contains("does not list the images it trained on"),
        "{}",
        unchecked.stderr
    );
    std::fs::remove_dir_all(&root).unwrap();
}
