//! The page's job natively, on the built-in MNIST digits, through the same session as the page:
//! the same split, test pairs and figures for the same seed. Prints progress to stderr and one
//! JSON line with the results last on stdout.
//!
//! cargo run --release [--features wgpu] --example train_mnist -- --epochs 3 [--backend flex|wgpu] [--seed 42]
//!     [--batch 64] [--lr 0.001] [--margin 1] [--save digits.siamese]
//!
//! `--save` writes the model as a file the page and the widget load ("Load a model file"):
//! train large natively, on a GPU, and use the model in the browser.

use siamese_web::backend::Backend;
use siamese_web::session::messages::{BackendChoice, Command, Reply, WebGpuSupport};
use siamese_web::session::{Host, Session};
use siamese_web::training::TrainConfig;

const MNIST_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist-10k.bin.gz");

/// Prints progress, keeps the answers.
#[derive(Default)]
struct Terminal {
    result: Option<serde_json::Value>,
    analysis: Option<serde_json::Value>,
    model_file: Option<Vec<u8>>,
    error: Option<String>,
}

impl Host for Terminal {
    fn send(&mut self, reply: Reply) {
        match reply {
            Reply::DatasetLoaded(summary) => eprintln!(
                "{}: {} training and {} test images ({} test pairs)",
                summary.name, summary.train_images, summary.test_images, summary.test_pairs
            ),
            Reply::Backend { backend, reason } => eprintln!("training on {backend}: {reason}"),
            Reply::Progress(p) if p.step.is_multiple_of(50) || p.step == p.steps_per_epoch => {
                eprintln!(
                    "epoch {}/{} step {}/{} loss {:.4} ({:.0} pairs/s)",
                    p.epoch, p.epochs, p.step, p.steps_per_epoch, p.loss, p.pairs_per_s
                )
            }
            Reply::Epoch { summary: s, .. } => eprintln!(
                "epoch {} done: train loss {:.4}, validation loss {:.4?}, validation acc {:.4?}",
                s.epoch, s.train_loss, s.validation_loss, s.validation_acc
            ),
            Reply::Done(report) => self.result = serde_json::to_value(&report.result).ok(),
            Reply::Analysis(report) => {
                self.analysis = Some(serde_json::json!({
                    "knn_acc": report.knn_acc,
                    "one_shot_acc": report.one_shot_acc,
                    "reference_images": report.reference_images,
                }))
            }
            Reply::ModelFile { bytes, .. } => self.model_file = Some(bytes),
            Reply::Error { message, .. } => self.error = Some(message),
            _ => {}
        }
    }

    async fn fetch(&mut self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|err| err.to_string())
    }

    async fn webgpu(&mut self) -> WebGpuSupport {
        WebGpuSupport::Hardware {
            adapter: "wgpu (Vulkan or Metal)".into(),
        }
    }

    async fn yield_now(&mut self) {}

    fn memory_bytes(&self) -> f64 {
        0.0
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
    let session = Session::new();
    let mut terminal = Terminal::default();
    let commands = [
        Command::UseMnist {
            url: MNIST_PATH.into(),
            train_images: None,
            test_images: None,
        },
        Command::Train {
            config,
            backend: match backend {
                Backend::Flex => BackendChoice::Cpu,
                Backend::Wgpu => BackendChoice::Webgpu,
            },
        },
    ];
    for command in commands {
        session.handle(command, &mut terminal).await;
        if let Some(error) = terminal.error.take() {
            return Err(error);
        }
    }
    if let Some(path) = &save {
        session.handle(Command::SaveModel, &mut terminal).await;
        let file = terminal
            .model_file
            .take()
            .ok_or("the model was not saved")?;
        std::fs::write(path, file).map_err(|e| format!("cannot write {path}: {e}"))?;
        eprintln!("model saved to {path}");
    }
    let mut line = terminal.result.ok_or("the run reported no result")?;
    if let (Some(line), Some(analysis)) = (line.as_object_mut(), terminal.analysis) {
        line.extend(analysis.as_object().cloned().unwrap_or_default());
    }
    Ok(line.to_string())
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
