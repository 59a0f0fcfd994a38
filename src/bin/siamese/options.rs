//! The command line's words: a subcommand, its options, and what each means.

use std::path::PathBuf;

use siamese_web::backend::Backend;
use siamese_web::data::ImageShape;
use siamese_web::session::settings::RunSettings;
use siamese_web::training::{SettingError, TrainConfig};

pub const USAGE: &str = "\
usage:
  siamese train (--data DIR | --mnist) [options] [--save FILE]
      trains a new model; DIR holds one folder of images per class (PNG, JPEG, GIF, BMP, WebP)
        --image-size SIZE       28x28-grey (default), 64x64-rgb, 224x224-rgb, any WxH-grey/rgb
                                from 10x10 to 1024x1024
        --epochs N              10        --batch N              64 (pairs per step)
        --lr X                  0.001     --margin X             1
        --validation-split X    0.2       --seed N               42
        --threads N             the CPU backend's threads (default: one per core; also for
                                evaluate, embed and compare)
        --workers N             on the CPU, N threads each train a share of every batch
                                (data-parallel, as the page's workers do; default: one per
                                thread, up to 8)
        --device DEVICE         cpu (default), wgpu (the GPU wgpu picks: Vulkan, Metal...), or
                                pinned: vulkan, metal, cuda, cuda:N; each GPU in a build with
                                --features of its name (wgpu, vulkan, metal, cuda). Several,
                                comma-separated (cuda:0,cuda:1 or cpu,cpu), train data-parallel
                                through burn-train: each takes its share of every batch
        --checkpoints DIR       trains through burn-train with a checkpoint in DIR after every
                                epoch; the same command again resumes after the last one
        --hold-out A,B          leaves these classes out of training: the unknowns that \"none
                                of the above\" is measured on (test pair figures then use the
                                trained classes' pairs)
        --enrol-held-out N      after training, enrols each held-out class from N of its
                                training images and reports how well they are recognised
        --train-images N, --test-images N   with --mnist: stratified samples, for quick runs
        --cache DIR             keeps the decoded images of --data on disk in DIR (also for
                                evaluate and embed): memory holds a few batches, not the
                                images, and a later run decodes only files it has not seen
  siamese evaluate --model FILE (--data DIR | --mnist)
      the model's test figures on the data's test pairs, at the model's own threshold
  siamese embed --model FILE (--data DIR | --mnist) --out DIR
      writes DIR/vectors.tsv, metadata.tsv, sprite.png and projector_config.json, the files
      the TensorFlow Embedding Projector opens (every image: the training part, then the test)
  siamese compare --model FILE IMAGE IMAGE
      the distance of two image files under the model, whether it calls them dissimilar, and
      whether the model trained on each
  siamese split --data DIR [--image-size SIZE] [--validation-split X] [--seed N]
                [--hold-out A,B] [--cache DIR]
      prints path<TAB>class<TAB>part for every usable image: the part (train, validation,
      test, or held-out for a held-out class's training part) is the one the same data and
      settings give in train, evaluate and the page
  siamese devices
      the devices this build finds here, as --device takes them
  siamese help";

/// Where the images come from.
#[derive(Debug, PartialEq)]
pub enum DataSource {
    Folder {
        root: PathBuf,
        /// Where the decoded images are kept on disk; None keeps them in memory.
        cache: Option<PathBuf>,
    },
    Mnist {
        train_images: Option<usize>,
        test_images: Option<usize>,
    },
}

#[derive(Debug)]
pub enum Invocation {
    Train {
        data: DataSource,
        shape: ImageShape,
        config: TrainConfig,
        /// The devices of `--device`: empty for the CPU; several train through burn-train.
        devices: Vec<Backend>,
        /// burn-train's checkpoint folder, where a run resumes.
        checkpoints: Option<PathBuf>,
        /// Training images each held-out class is enrolled from after the run.
        enrol_held_out: Option<usize>,
        save: Option<PathBuf>,
        /// `--workers`: the session's data-parallel CPU training (by default one per thread).
        workers: usize,
    },
    Evaluate {
        model: PathBuf,
        data: DataSource,
    },
    Embed {
        model: PathBuf,
        data: DataSource,
        out: PathBuf,
    },
    Compare {
        model: PathBuf,
        images: [PathBuf; 2],
    },
    /// The part of every image of a folder.
    Split {
        data: DataSource,
        shape: ImageShape,
        config: TrainConfig,
    },
    /// The devices this build can train on, here.
    Devices,
}

/// Every option any subcommand takes, as given.
struct Given {
    data: Option<PathBuf>,
    mnist: bool,
    image_size: Option<ImageShape>,
    model: Option<PathBuf>,
    out: Option<PathBuf>,
    save: Option<PathBuf>,
    cache: Option<PathBuf>,
    devices: Vec<Backend>,
    checkpoints: Option<PathBuf>,
    enrol_held_out: Option<usize>,
    train_images: Option<usize>,
    test_images: Option<usize>,
    /// A run's settings as typed, read and checked by the session's rules.
    settings: RunSettings,
    tuned: Vec<&'static str>,
    positional: Vec<PathBuf>,
    threads: Option<usize>,
}

/// A subcommand and the threads it may use.
#[derive(Debug)]
pub struct Parsed {
    pub invocation: Invocation,
    /// Threads of the CPU backend's matrix products; None for one per core.
    pub threads: Option<usize>,
}

/// What the words ask for; None for help.
pub fn parse(args: &[String]) -> Result<Option<Parsed>, String> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err("say what to do: train, evaluate, embed, compare, split or devices".into());
    };
    if matches!(subcommand.as_str(), "help" | "--help" | "-h") {
        return Ok(None);
    }
    if !matches!(
        subcommand.as_str(),
        "train" | "evaluate" | "embed" | "compare" | "split" | "devices"
    ) {
        return Err(format!(
            "unknown command {subcommand:?}: use train, evaluate, embed, compare, split or \
             devices"
        ));
    }
    let given = read_options(rest)?;
    let takes = |flag: &str| match subcommand.as_str() {
        "train" => !matches!(flag, "--model" | "--out"),
        "evaluate" => matches!(
            flag,
            "--model" | "--data" | "--mnist" | "--cache" | "--threads"
        ),
        "embed" => matches!(
            flag,
            "--model" | "--data" | "--mnist" | "--out" | "--cache" | "--threads"
        ),
        "compare" => matches!(flag, "--model" | "--threads"),
        "split" => matches!(
            flag,
            "--data" | "--image-size" | "--cache" | "--validation-split" | "--seed" | "--hold-out"
        ),
        _ => false,
    };
    if let Some(flag) = given.tuned.iter().find(|flag| !takes(flag)) {
        return Err(format!("{subcommand} does not take {flag}"));
    }
    if subcommand != "compare" && !given.positional.is_empty() {
        return Err(format!(
            "unexpected argument {}",
            given.positional[0].display()
        ));
    }
    let model = || {
        given
            .model
            .clone()
            .ok_or(format!("{subcommand} needs --model FILE"))
    };
    let run = given.settings.resolve().map_err(named_by_its_option)?;
    let invocation = match subcommand.as_str() {
        "train" => Invocation::Train {
            data: data_source(&given)?,
            shape: given.image_size.unwrap_or(ImageShape::MNIST),
            config: run.config,
            devices: given.devices.clone(),
            checkpoints: given.checkpoints.clone(),
            enrol_held_out: given.enrol_held_out,
            save: given.save.clone(),
            workers: match given.settings.workers {
                Some(_) => run.workers,
                None => default_workers(given.threads),
            },
        },
        "evaluate" => Invocation::Evaluate {
            model: model()?,
            data: data_source(&given)?,
        },
        "embed" => Invocation::Embed {
            model: model()?,
            data: data_source(&given)?,
            out: given.out.clone().ok_or("embed needs --out DIR")?,
        },
        "devices" => Invocation::Devices,
        "split" => Invocation::Split {
            data: data_source(&given)?,
            shape: given.image_size.unwrap_or(ImageShape::MNIST),
            config: run.config,
        },
        _ => Invocation::Compare {
            model: model()?,
            images: match &given.positional[..] {
                [left, right] => [left.clone(), right.clone()],
                _ => return Err("compare takes two image files".into()),
            },
        },
    };
    if let Invocation::Train {
        config,
        enrol_held_out: Some(_),
        ..
    } = &invocation
        && config.held_out().is_empty()
    {
        return Err("--enrol-held-out enrols the classes of --hold-out: give them".into());
    }
    Ok(Some(Parsed {
        invocation,
        threads: given.threads,
    }))
}

/// The session's refusal of a setting, naming the option it was given as.
fn named_by_its_option(err: SettingError) -> String {
    let option = OPTIONS_OF_SETTINGS
        .iter()
        .find(|(setting, _)| *setting == err.setting)
        .map_or(err.setting, |(_, option)| option);
    SettingError {
        setting: option,
        ..err
    }
    .to_string()
}

/// The settings of a run (as the session names them) and the options that give them.
const OPTIONS_OF_SETTINGS: &[(&str, &str)] = &[
    ("epochs", "--epochs"),
    ("batch_size", "--batch"),
    ("learning_rate", "--lr"),
    ("margin", "--margin"),
    ("validation_split", "--validation-split"),
    ("seed", "--seed"),
    ("held_out_classes", "--hold-out"),
    ("workers", "--workers"),
];

/// Workers when `--workers` is not given: one per thread of `--threads` (by default one per
/// core), up to 8 as in the page. Each takes a share of every batch: on 2 cores two train
/// 1.4x faster than one on both (PERFORMANCE.md).
fn default_workers(threads: Option<usize>) -> usize {
    let cores = || std::thread::available_parallelism().map_or(1, usize::from);
    threads.unwrap_or_else(cores).clamp(1, 8)
}

fn data_source(given: &Given) -> Result<DataSource, String> {
    if (given.train_images.is_some() || given.test_images.is_some()) && !given.mnist {
        return Err("--train-images and --test-images sample the built-in digits (--mnist)".into());
    }
    if given.mnist
        && given
            .image_size
            .is_some_and(|shape| shape != ImageShape::MNIST)
    {
        return Err("the built-in digits are 28x28 grey: leave --image-size out".into());
    }
    if given.mnist && given.cache.is_some() {
        return Err(
            "--cache keeps the decoded images of --data DIR; the built-in digits need none".into(),
        );
    }
    match (&given.data, given.mnist) {
        (Some(dir), false) => Ok(DataSource::Folder {
            root: dir.clone(),
            cache: given.cache.clone(),
        }),
        (None, true) => Ok(DataSource::Mnist {
            train_images: given.train_images,
            test_images: given.test_images,
        }),
        (Some(_), true) => Err("choose one of --data DIR and --mnist".into()),
        (None, false) => {
            Err("say what to train on: --data DIR (one folder per class) or --mnist".into())
        }
    }
}

/// The options that take a value (`--mnist` is the one that does not).
const VALUED_OPTIONS: &[&str] = &[
    "--data",
    "--image-size",
    "--model",
    "--out",
    "--save",
    "--cache",
    "--device",
    "--checkpoints",
    "--hold-out",
    "--enrol-held-out",
    "--train-images",
    "--test-images",
    "--epochs",
    "--batch",
    "--lr",
    "--margin",
    "--validation-split",
    "--seed",
    "--threads",
    "--workers",
];

fn read_options(args: &[String]) -> Result<Given, String> {
    let mut given = Given {
        data: None,
        mnist: false,
        image_size: None,
        model: None,
        out: None,
        save: None,
        cache: None,
        devices: Vec::new(),
        checkpoints: None,
        enrol_held_out: None,
        train_images: None,
        test_images: None,
        settings: RunSettings::default(),
        tuned: Vec::new(),
        positional: Vec::new(),
        threads: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if !arg.starts_with("--") {
            given.positional.push(arg.into());
            continue;
        }
        if arg == "--mnist" {
            given.mnist = true;
            given.tuned.push("--mnist");
            continue;
        }
        let flag = *VALUED_OPTIONS
            .iter()
            .find(|flag| *flag == arg)
            .ok_or(format!("unknown option {arg}"))?;
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |why: String| format!("{flag} {value}: {why}");
        let count = |value: &str| value.parse::<usize>().map_err(|e| bad(e.to_string()));
        // The run's settings are read by the session's rules (RunSettings::resolve).
        let text = Some(value.clone());
        let settings = &mut given.settings;
        match flag {
            "--data" => given.data = Some(value.into()),
            "--image-size" => given.image_size = Some(parse_image_size(value).map_err(bad)?),
            "--model" => given.model = Some(value.into()),
            "--out" => given.out = Some(value.into()),
            "--save" => given.save = Some(value.into()),
            "--cache" => given.cache = Some(value.into()),
            "--device" => {
                given.devices = value
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(bad)?
            }
            "--checkpoints" => given.checkpoints = Some(value.into()),
            "--hold-out" => settings.held_out_classes = text,
            "--enrol-held-out" => given.enrol_held_out = Some(count(value)?),
            "--train-images" => given.train_images = Some(count(value)?),
            "--test-images" => given.test_images = Some(count(value)?),
            "--epochs" => settings.epochs = text,
            "--batch" => settings.batch_size = text,
            "--lr" => settings.learning_rate = text,
            "--margin" => settings.margin = text,
            "--validation-split" => settings.validation_split = text,
            "--threads" => given.threads = Some(count(value)?.max(1)),
            "--workers" => settings.workers = text,
            _ => settings.seed = text,
        }
        given.tuned.push(flag);
    }
    Ok(given)
}

/// `28x28-grey`, `224x224-rgb` (or with a space, as the widget's `image-size` attribute).
pub fn parse_image_size(text: &str) -> Result<ImageShape, String> {
    let bad = || "not a size like 28x28-grey or 64x64-rgb".to_string();
    let (size, colour) = text.split_once(['-', ' ']).ok_or_else(bad)?;
    let (width, height) = size.split_once('x').ok_or_else(bad)?;
    let side = |text: &str| {
        text.parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(bad)
    };
    let channels = match colour.to_ascii_lowercase().as_str() {
        "grey" | "gray" => 1,
        "rgb" => 3,
        _ => return Err(bad()),
    };
    Ok(ImageShape::new(channels, side(height)?, side(width)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn train_takes_a_folder_its_size_and_the_settings() {
        let invocation = parse(&words(
            "train --data photos --image-size 64x32-rgb --epochs 3 --lr 0.01 --threads 2 --save m.siamese \
             --hold-out cat,dog --enrol-held-out 5 --workers 3",
        ))
        .unwrap();
        let Some(Parsed {
            invocation:
                Invocation::Train {
                    data,
                    shape,
                    config,
                    devices,
                    checkpoints,
                    enrol_held_out,
                    save,
                    workers,
                },
            threads,
        }) = invocation
        else {
            panic!("{invocation:?}");
        };
        assert_eq!(workers, 3);
        assert_eq!(
            data,
            DataSource::Folder {
                root: "photos".into(),
                cache: None
            }
        );
        assert_eq!(shape, ImageShape::new(3, 32, 64));
        assert_eq!(
            (config.epochs, config.learning_rate, config.batch_size),
            (3, 0.01, 64)
        );
        assert_eq!((devices, checkpoints), (Vec::new(), None));
        assert_eq!(save, Some("m.siamese".into()));
        assert_eq!(threads, Some(2));
        assert_eq!(config.held_out(), ["cat", "dog"]);
        assert_eq!(enrol_held_out, Some(5));
    }

    #[test]
    fn training_has_one_worker_per_thread_up_to_eight_unless_told() {
        let workers = |line: &str| match parse(&words(line)) {
            Ok(Some(Parsed {
                invocation: Invocation::Train { workers, .. },
                ..
            })) => workers,
            other => panic!("{other:?}"),
        };
        assert_eq!(workers("train --mnist --threads 3"), 3);
        assert_eq!(workers("train --mnist --threads 20"), 8);
        assert_eq!(workers("train --mnist --threads 3 --workers 1"), 1);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(workers("train --mnist"), cores.min(8));
    }

    #[test]
    fn several_devices_are_a_list() {
        let Some(Parsed {
            invocation:
                Invocation::Train {
                    devices,
                    checkpoints,
                    ..
                },
            ..
        }) = parse(&words(
            "train --mnist --device cuda:0,cuda:1 --checkpoints run",
        ))
        .unwrap()
        else {
            panic!("not a train invocation");
        };
        assert_eq!(devices, [Backend::Cuda(0), Backend::Cuda(1)]);
        assert_eq!(checkpoints, Some("run".into()));
    }

    #[test]
    fn mistakes_are_named() {
        for (line, expected) in [
            ("", "say what to do"),
            ("fly", "unknown command"),
            ("train", "say what to train on"),
            ("train --data a --mnist", "choose one of"),
            (
                "train --data a --epochs 0",
                "--epochs is \"0\": it must be a whole number, 1 or more",
            ),
            (
                "train --data a --seed -1",
                "--seed is \"-1\": it must be a whole number from 0 to",
            ),
            (
                "train --data a --workers 0",
                "--workers is \"0\": it must be a whole number from 1 to 64",
            ),
            ("train --data a --epochs", "--epochs needs a value"),
            (
                "train --data a --lr fast",
                "--lr is \"fast\": it must be a number above 0",
            ),
            ("train --data a --image-size big", "not a size like"),
            (
                "train --data a --test-images 5",
                "sample the built-in digits",
            ),
            ("train --mnist --image-size 64x64-rgb", "28x28 grey"),
            ("train --data a --colour", "unknown option --colour"),
            ("evaluate --data a", "needs --model FILE"),
            (
                "evaluate --model m --data a --epochs 2",
                "evaluate does not take --epochs",
            ),
            ("embed --model m --mnist", "needs --out DIR"),
            ("compare --model m a.png", "two image files"),
            ("devices --mnist", "devices does not take --mnist"),
            ("train --mnist --device cpu,tpu", "unknown device \"tpu\""),
            (
                "evaluate --model m --mnist --checkpoints c",
                "evaluate does not take --checkpoints",
            ),
        ] {
            let err = parse(&words(line)).unwrap_err();
            assert!(err.contains(expected), "{line:?}: {err}");
        }
    }
}
