//! The session's host on a terminal: progress to stderr, answers kept for the command line.

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use web_time::Instant;

use siamese_web::backend::{Backend, training_device};
use siamese_web::data::ImageShape;
use siamese_web::data::pixels::PixelStore;
use siamese_web::session::messages::{DatasetSummary, Reply, WebGpuSupport};
use siamese_web::session::{Gpu, Host};
use siamese_web::training::BatchProgress;
use siamese_web::training::burn_train::{BurnTrainRun, epochs_done};
use siamese_web::training::shares::{BatchHelpers, ThreadHelpers};

/// Progress lines at most this often (and at the end of every epoch), where there is no bar.
const PROGRESS_EVERY_S: f64 = 2.0;

/// Progress on stderr: bars on a terminal; where stderr is a file or a pipe (a log, CI), which
/// a bar would fill with redraws, a line at most every [`PROGRESS_EVERY_S`].
enum ProgressView {
    Bars(Option<ProgressBar>),
    Lines { last: Instant },
}

impl ProgressView {
    fn new() -> Self {
        if std::io::stderr().is_terminal() {
            ProgressView::Bars(None)
        } else {
            ProgressView::Lines {
                last: Instant::now(),
            }
        }
    }

    fn files(&mut self, done: usize, total: usize) {
        match self {
            ProgressView::Bars(bar) => {
                let bar = bar.get_or_insert_with(|| {
                    new_bar(total, "reading", "{pos}/{len} files, ETA {eta}")
                });
                bar.set_position(done as u64);
                if done == total {
                    self.clear();
                }
            }
            ProgressView::Lines { last } => {
                if done < total && last.elapsed().as_secs_f64() >= PROGRESS_EVERY_S {
                    *last = Instant::now();
                    eprintln!("read {done} of {total} files");
                }
            }
        }
    }

    fn step(&mut self, p: &BatchProgress) {
        match self {
            ProgressView::Bars(bar) => {
                // A new epoch's bar replaces the last one.
                if p.step == 1
                    && let Some(done) = bar.take()
                {
                    done.finish_and_clear();
                }
                let bar = bar.get_or_insert_with(|| {
                    let prefix = format!("epoch {}/{}", p.epoch, p.epochs);
                    new_bar(p.steps_per_epoch, &prefix, "{pos}/{len} {msg}, ETA {eta}")
                });
                bar.set_message(format!("loss {:.4}, {:.0} pairs/s", p.loss, p.pairs_per_s));
                bar.set_position(p.step as u64);
            }
            ProgressView::Lines { last } => {
                let end_of_epoch = p.step == p.steps_per_epoch;
                if !end_of_epoch && last.elapsed().as_secs_f64() < PROGRESS_EVERY_S {
                    return;
                }
                *last = Instant::now();
                eprintln!(
                    "epoch {}/{} step {}/{} loss {:.4} ({:.0} pairs/s)",
                    p.epoch, p.epochs, p.step, p.steps_per_epoch, p.loss, p.pairs_per_s
                );
            }
        }
    }

    /// A line that stays: the bar it would cross out goes first.
    fn line(&mut self, text: &str) {
        self.clear();
        eprintln!("{text}");
    }

    fn clear(&mut self) {
        if let ProgressView::Bars(bar) = self
            && let Some(bar) = bar.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// A bar as wide as the terminal leaves room for, so that its line never wraps.
fn new_bar(len: usize, prefix: &str, counts: &str) -> ProgressBar {
    let template = format!("{{prefix}} [{{wide_bar}}] {counts}");
    let style = ProgressStyle::with_template(&template)
        .expect("a valid template")
        .progress_chars("=> ");
    ProgressBar::new(len as u64)
        .with_style(style)
        .with_prefix(prefix.to_string())
}

pub struct Terminal {
    /// The replies of the command being handled that are not progress events.
    answers: Vec<Reply>,
    progress: ProgressView,
    /// The GPU of `--device`, when a run asks for one.
    gpu: Backend,
    /// The devices and checkpoint folder of a run through burn-train (several `--device`s or
    /// `--checkpoints`).
    burn_train: Option<(Vec<Backend>, Option<PathBuf>)>,
    /// The folder of `--cache`, where uploaded images are kept on disk.
    pub cache: Option<PathBuf>,
}

impl Terminal {
    pub fn new() -> Self {
        Self {
            answers: Vec::new(),
            progress: ProgressView::new(),
            gpu: Backend::Wgpu,
            burn_train: None,
            cache: None,
        }
    }

    /// The devices of `--device` (none: the CPU), and `--checkpoints`: one device trains with
    /// the session's own loop, several or a checkpoint folder through burn-train.
    pub fn choose_devices(&mut self, devices: &[Backend], checkpoints: Option<PathBuf>) {
        if let [device] = devices {
            self.gpu = *device;
        }
        if devices.len() > 1 || checkpoints.is_some() {
            let devices = if devices.is_empty() {
                vec![Backend::Flex]
            } else {
                devices.to_vec()
            };
            self.burn_train = Some((devices, checkpoints));
        }
    }

    /// The answers since the last call; the error, when the command failed.
    pub fn take_answers(&mut self) -> Result<Vec<Reply>, String> {
        let answers = std::mem::take(&mut self.answers);
        match answers.iter().find_map(|reply| match reply {
            Reply::Error { message, .. } => Some(message.clone()),
            _ => None,
        }) {
            Some(message) => Err(message),
            None => Ok(answers),
        }
    }
}

/// What a user needs to know of the data: the classes and their counts, and every file that
/// could not be used, named.
pub fn print_summary(summary: &DatasetSummary, unreadable: &[String]) {
    for line in summary.file_errors.iter().chain(unreadable) {
        eprintln!("skipped {line}");
    }
    for note in &summary.file_notes {
        eprintln!("note: {note}");
    }
    let classes: Vec<String> = summary
        .classes
        .iter()
        .map(|class| format!("{} ({})", class.name, class.count))
        .collect();
    eprintln!(
        "{}: {}: {}",
        summary.name,
        counted(classes.len(), "class", "classes"),
        classes.join(", ")
    );
    eprintln!(
        "{}x{} {}: {} training and {} test images, {} test pairs; {} skipped",
        summary.width,
        summary.height,
        if summary.channels == 1 { "grey" } else { "RGB" },
        summary.train_images,
        summary.test_images,
        summary.test_pairs,
        counted(
            summary.file_errors.len() + unreadable.len(),
            "file",
            "files"
        )
    );
    if summary.train_groups + summary.test_groups > 0 {
        eprintln!(
            "groups kept on one side of the split (a group folder, copies of one image): {} in \
             training, {} in the test part",
            summary.train_groups, summary.test_groups
        );
    }
    for duplicate in &summary.duplicates {
        eprintln!("warning: {duplicate}");
    }
    if let Some(problem) = &summary.problem {
        eprintln!("problem: {problem}");
    }
}

fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl Host for Terminal {
    fn send(&mut self, reply: Reply) {
        match &reply {
            Reply::Progress(p) => return self.progress.step(p),
            Reply::FilesRead { done, total, .. } => {
                self.progress.files(*done, *total);
                if done < total {
                    return;
                }
            }
            // Files that could not be read from disk never reach the session: done stays short.
            Reply::DatasetLoaded(_) => self.progress.clear(),
            Reply::Backend { backend, reason } => self
                .progress
                .line(&format!("training on {backend}: {reason}")),
            Reply::Epoch {
                summary: s,
                memory_bytes,
            } => self.progress.line(&format!(
                "epoch {} done: train loss {:.4}, validation loss {}, validation accuracy {} \
                 (memory {:.0} MB)",
                s.epoch,
                s.train_loss,
                s.validation_loss.map_or("-".into(), |l| format!("{l:.4}")),
                s.validation_acc
                    .map_or("-".into(), |a| format!("{:.2} %", 100.0 * a)),
                memory_bytes / 1e6
            )),
            _ => {}
        }
        if !reply.is_event() {
            self.answers.push(reply);
        }
    }

    async fn fetch(&mut self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|err| err.to_string())
    }

    async fn webgpu(&mut self) -> WebGpuSupport {
        WebGpuSupport::Hardware {
            adapter: "chosen with --device".into(),
        }
    }

    async fn helpers(&mut self, count: usize) -> impl BatchHelpers + 'static {
        ThreadHelpers::new(count)
    }

    async fn gpu(&mut self) -> Gpu {
        Gpu {
            backend: self.gpu.to_string(),
            label: match self.gpu {
                Backend::Cuda(index) => format!("CUDA device {index}"),
                Backend::Vulkan => "Vulkan".into(),
                Backend::Metal => "Metal".into(),
                Backend::Flex | Backend::Wgpu => "wgpu".into(),
            },
            device: training_device(self.gpu).await,
        }
    }

    async fn burn_train(&mut self) -> Result<Option<BurnTrainRun>, String> {
        let Some((backends, checkpoints)) = &self.burn_train else {
            return Ok(None);
        };
        if let Some(dir) = checkpoints {
            match epochs_done(dir) {
                0 => eprintln!("checkpoints go to {}", dir.display()),
                done => eprintln!(
                    "resuming after epoch {done}, from the checkpoints in {}",
                    dir.display()
                ),
            }
        }
        let mut devices = Vec::new();
        for &backend in backends {
            devices.push(training_device(backend).await?);
        }
        let names: Vec<String> = backends
            .iter()
            .map(|backend| match backend {
                Backend::Flex => "cpu".to_string(),
                other => other.to_string(),
            })
            .collect();
        Ok(Some(BurnTrainRun {
            devices,
            label: names.join(","),
            checkpoints: checkpoints.clone(),
        }))
    }

    async fn yield_now(&mut self) {}

    fn pixel_store(&mut self, shape: ImageShape) -> Result<PixelStore, String> {
        match &self.cache {
            Some(dir) => {
                let store = PixelStore::on_disk(dir, shape)?;
                eprintln!(
                    "image cache {}: {} images of this size stored",
                    store.place(),
                    store.rows()
                );
                Ok(store)
            }
            None => Ok(PixelStore::in_memory(shape.pixels())),
        }
    }

    /// The process's resident memory (Linux; 0 elsewhere).
    fn memory_bytes(&self) -> f64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let resident_pages: f64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|pages| pages.parse().ok())
            .unwrap_or(0.0);
        resident_pages * 4096.0
    }
}
