//! The whole job natively on the built-in MNIST digits; prints progress to stderr and one JSON
//! line with the results last on stdout.
//!
//! cargo run --release --example train_mnist -- --epochs 3 [--backend flex|wgpu] [--seed 42]
//!     [--batch 64] [--lr 0.001] [--margin 1] [--save digits.siamese]
//!
//! `--save` writes the model as a file the page and the widget load ("Load a model file"):
//! train large natively, on a GPU, and use the model in the browser.

use siamese_web::backend::{Backend, training_device};
use siamese_web::data::mnist::{mnist_train_test, parse_mnist};
use siamese_web::model_file::{ModelInfo, save_model};
use siamese_web::training::{
    BatchProgress, Control, EpochSummary, TrainConfig, TrainObserver, TrainingData, analyse,
    evaluate, train,
};

const MNIST: &[u8] = include_bytes!("../assets/mnist-10k.bin.gz");
const TEST_IMAGES: usize = 2000;

struct PrintProgress;

impl TrainObserver for PrintProgress {
    async fn on_batch(&mut self, p: &BatchProgress) -> Control {
        if p.step.is_multiple_of(50) || p.step == p.steps_per_epoch {
            eprintln!(
                "epoch {}/{} step {}/{} loss {:.4} ({:.0} pairs/s)",
                p.epoch, p.epochs, p.step, p.steps_per_epoch, p.loss, p.pairs_per_s
            );
        }
        Control::Continue
    }

    async fn on_epoch(&mut self, s: &EpochSummary) -> Control {
        eprintln!(
            "epoch {} done: train loss {:.4}, validation loss {:.4?}, validation acc {:.4?}",
            s.epoch, s.train_loss, s.validation_loss, s.validation_acc
        );
        Control::Continue
    }
}

struct Options {
    config: TrainConfig,
    backend: Backend,
    save: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut config = TrainConfig::new();
    let mut backend = Backend::Flex;
    let mut save = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |err: &dyn std::fmt::Display| format!("{flag} {value}: {err}");
        match flag.as_str() {
            "--epochs" => config.epochs = value.parse().map_err(|e| bad(&e))?,
            "--backend" => backend = value.parse().map_err(|e: String| bad(&e))?,
            "--seed" => config.seed = value.parse().map_err(|e| bad(&e))?,
            "--batch" => config.batch_size = value.parse().map_err(|e| bad(&e))?,
            "--lr" => config.learning_rate = value.parse().map_err(|e| bad(&e))?,
            "--margin" => config.margin = value.parse().map_err(|e| bad(&e))?,
            "--save" => save = Some(value),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Options {
        config,
        backend,
        save,
    })
}

async fn run() -> Result<String, String> {
    let Options {
        config,
        backend,
        save,
    } = parse_args()?;
    let device = training_device(backend).await?;
    let digits = parse_mnist(MNIST)?;
    let (train_set, test_set) = mnist_train_test(&digits, TEST_IMAGES, config.seed);
    let data = TrainingData::split(&train_set, &config).map_err(|e| e.to_string())?;
    eprintln!(
        "{} training, {} validation, {} test images on {}",
        data.train.len(),
        data.validation.len(),
        test_set.len(),
        backend.name()
    );
    let trained = train(&data, &config, &device, &mut PrintProgress)
        .await
        .map_err(|e| e.to_string())?;
    let (evaluation, _, _) = evaluate(&trained, &data, &test_set, config.seed, &device)
        .await
        .map_err(|e| e.to_string())?;
    let threshold = evaluation.best_threshold;
    let analysis = analyse(
        &trained.model,
        threshold,
        &data.train,
        &test_set,
        config.seed,
        &device,
    )
    .await
    .map_err(|e| e.to_string())?;
    if let Some(path) = &save {
        let info = ModelInfo {
            shape: train_set.shape,
            embedding_size: trained.model_config.embedding_size,
            class_names: train_set.class_names.clone(),
            threshold,
            config: config.clone(),
            dataset: "MNIST digits".into(),
            epochs_trained: trained.history.len(),
            test_acc: evaluation.test_acc_best,
        };
        let file = save_model(&trained.model, &info)
            .await
            .map_err(|e| e.to_string())?;
        std::fs::write(path, file).map_err(|e| format!("cannot write {path}: {e}"))?;
        eprintln!("model saved to {path}");
    }
    Ok(serde_json::json!({
        "knn_acc": analysis.knn_acc,
        "one_shot_acc": analysis.one_shot_acc,
        "epochs": trained.history.len(),
        "backend": backend.name(),
        "test_acc": evaluation.test_acc,
        "best_threshold": evaluation.best_threshold,
        "test_acc_best": evaluation.test_acc_best,
        "auc": evaluation.auc,
        "pairs_per_s": trained.pairs_per_s,
        "train_s": trained.train_s,
    })
    .to_string())
}

fn main() {
    match pollster::block_on(run()) {
        Ok(line) => println!("{line}"),
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    }
}
