//! Each subcommand as a sequence of session commands, and the JSON line it ends with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use siamese_web::backend::Backend;
use siamese_web::data::ImageShape;
use siamese_web::data::folder::labelled_files;
use siamese_web::model_file::read_model_info;
use siamese_web::projector::{CONFIG_FILE, METADATA_FILE, SPRITE_FILE, VECTORS_FILE};
use siamese_web::session::Session;
use siamese_web::session::messages::{
    BackendChoice, Command, ImageRef, OpenSetReport, Reply, UploadedFile,
};
use siamese_web::session::settings::RunSettings;
use web_time::Instant;

use crate::options::{DataSource, Invocation};
use crate::terminal::{Terminal, print_summary};

/// Says how many test images the model had trained on and were left out of its figures, or
/// that a model file of an earlier version cannot tell.
fn say_what_was_left_out(left_out: Option<usize>) {
    match left_out {
        Some(0) => {}
        Some(left_out) => {
            eprintln!("note: {left_out} test images were left out: the model trained on them")
        }
        None => eprintln!(
            "note: this model's file does not list the images it trained on (an earlier version \
             saved it): its test figures may include them"
        ),
    }
}

const MNIST_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist-10k.bin.gz");
/// Files read and decoded at a time, at most: the bytes of one group are in memory, then only
/// the resized pixels of its images are kept (as in the page), so a folder of large photos
/// holds no more than this many bytes of files at once.
const FILES_PER_GROUP: usize = 256;
const FILE_BYTES_PER_GROUP: usize = 64 << 20;

struct Cli {
    session: Session,
    terminal: Terminal,
    /// The files of the folder read, by the names the session knows them by.
    paths: HashMap<String, PathBuf>,
}

impl Cli {
    /// Has the session handle `command`; its answers, or its error.
    async fn ask(&mut self, command: Command) -> Result<Vec<Reply>, String> {
        self.session.handle(command, &mut self.terminal).await;
        self.terminal.take_answers()
    }

    async fn load_data(&mut self, data: &DataSource, shape: ImageShape) -> Result<(), String> {
        let (answers, unreadable) = match data {
            DataSource::Mnist {
                train_images,
                test_images,
            } => {
                let command = Command::UseMnist {
                    url: MNIST_PATH.into(),
                    train_images: *train_images,
                    test_images: *test_images,
                };
                (self.ask(command).await?, Vec::new())
            }
            DataSource::Folder { root, cache } => {
                self.terminal.cache = cache.clone();
                self.load_folder(root, shape).await?
            }
        };
        let summary = answers
            .iter()
            .find_map(|reply| match reply {
                Reply::DatasetLoaded(summary) => Some(summary),
                _ => None,
            })
            .ok_or("the data was not loaded")?;
        print_summary(summary, &unreadable);
        Ok(())
    }

    /// Sends the folder's files to the session a batch at a time; the answers of the last, and
    /// the files that could not be read from disk at all.
    async fn load_folder(
        &mut self,
        root: &Path,
        shape: ImageShape,
    ) -> Result<(Vec<Reply>, Vec<String>), String> {
        let files = labelled_files(root)?;
        eprintln!("reading {} files from {}", files.len(), root.display());
        let started = Instant::now();
        self.ask(Command::BeginFiles {
            total: files.len(),
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
        })
        .await?;
        let mut unreadable = Vec::new();
        let mut group = Vec::new();
        let mut group_bytes = 0;
        for (index, file) in files.iter().enumerate() {
            match std::fs::read(&file.path) {
                Ok(bytes) => {
                    group_bytes += bytes.len();
                    group.push(UploadedFile {
                        class_name: file.class_name.clone(),
                        file_name: file.file_name.clone(),
                        bytes,
                        group: file.group.clone(),
                        key: None,
                    });
                }
                Err(err) => unreadable.push(format!("{}: cannot be read: {err}", file.file_name)),
            }
            let last = index + 1 == files.len();
            if last || group.len() == FILES_PER_GROUP || group_bytes >= FILE_BYTES_PER_GROUP {
                let files = std::mem::take(&mut group);
                group_bytes = 0;
                self.ask(Command::AddFiles { files }).await?;
            }
        }
        let answers = self.ask(Command::EndFiles).await?;
        eprintln!(
            "read and decoded {} files in {:.1} s",
            files.len(),
            started.elapsed().as_secs_f64()
        );
        self.paths = files
            .into_iter()
            .map(|file| (file.file_name, file.path))
            .collect();
        Ok((answers, unreadable))
    }

    /// Makes the model file read from `path` the current model (refused with the session's
    /// reason when it is not one of ours) and says what it is.
    async fn load_model(&mut self, path: &Path, bytes: Vec<u8>) -> Result<Vec<Reply>, String> {
        let answers = self
            .ask(Command::LoadModel {
                file_name: path.display().to_string(),
                bytes,
            })
            .await?;
        if let Some(Reply::ModelLoaded { info, .. }) = answers.first() {
            eprintln!(
                "model {}: {}x{} {}, {} classes, trained {} epochs on {}",
                path.display(),
                info.shape.width,
                info.shape.height,
                if info.shape.channels == 1 {
                    "grey"
                } else {
                    "RGB"
                },
                info.class_names.len(),
                info.epochs_trained,
                info.dataset
            );
        }
        Ok(answers)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}

/// A model file and the image size it was trained for, which the data, read next, must have.
fn read_model_for(path: &Path, data: &DataSource) -> Result<(Vec<u8>, ImageShape), String> {
    let bytes = read(path)?;
    let (info, _) = read_model_info(&bytes).map_err(|err| format!("{}: {err}", path.display()))?;
    if matches!(data, DataSource::Mnist { .. }) && info.shape != ImageShape::MNIST {
        return Err(format!(
            "{}: this model was trained for {}x{} images with {} channel(s), not the digits' 28x28 grey",
            path.display(),
            info.shape.width,
            info.shape.height,
            info.shape.channels
        ));
    }
    Ok((bytes, info.shape))
}

/// Every device of the GPU APIs this build has, as `--device` names them, after the CPU.
fn devices() -> Vec<String> {
    #[allow(unused_mut)] // without a GPU feature
    let mut found = vec!["cpu".to_string()];
    #[cfg(feature = "cuda")]
    {
        let cuda = burn::tensor::Device::enumerate(burn::tensor::DeviceType::Cuda).len();
        found.extend((0..cuda).map(|index| Backend::Cuda(index).to_string()));
    }
    #[cfg(feature = "vulkan")]
    if !burn::tensor::Device::enumerate(burn::tensor::DeviceType::Vulkan).is_empty() {
        found.push(Backend::Vulkan.to_string());
    }
    #[cfg(feature = "metal")]
    if !burn::tensor::Device::enumerate(burn::tensor::DeviceType::Metal).is_empty() {
        found.push(Backend::Metal.to_string());
    }
    #[cfg(feature = "wgpu")]
    if !burn::tensor::Device::enumerate(burn::tensor::DeviceType::Wgpu).is_empty() {
        found.push(Backend::Wgpu.to_string());
    }
    found
}

/// The classification figures of an analysis, for the JSON line.
fn analysis_fields(answers: &[Reply]) -> Value {
    answers
        .iter()
        .find_map(|reply| match reply {
            Reply::Analysis(report) => Some(json!({
                "seen_images_left_out": report.seen_images_left_out,
                "training_data_changed": report.training_data_changed,
                "knn_acc": report.knn_acc,
                "one_shot_acc": report.one_shot_acc,
                "reference_images": report.reference_images,
                "open_set": report.open_set.as_ref().map(open_set_fields),
            })),
            _ => None,
        })
        .unwrap_or_else(|| json!({}))
}

/// "None of the above" in figures: the curve left out.
fn open_set_fields(report: &OpenSetReport) -> Value {
    json!({
        "unknowns": report.unknowns,
        "known_queries": report.known_queries,
        "unknown_queries": report.unknown_queries,
        "closed_set_acc": report.closed_set_acc,
        "eer": report.eer,
        "equal_error": report.equal_error,
        "chosen": report.chosen,
        "enrolled": report.enrolled,
        "enrolled_acc": report.enrolled_acc,
        "enrolled_queries": report.enrolled_queries,
    })
}

fn merged(mut line: Value, more: Value) -> Value {
    if let (Some(line), Value::Object(more)) = (line.as_object_mut(), more) {
        line.extend(more);
    }
    line
}

pub async fn run(invocation: Invocation) -> Result<String, String> {
    let mut terminal = Terminal::new();
    if let Invocation::Train {
        devices,
        checkpoints,
        ..
    } = &invocation
    {
        terminal.choose_devices(devices, checkpoints.clone());
    }
    let mut cli = Cli {
        session: Session::new(),
        terminal,
        paths: HashMap::new(),
    };
    let line = match invocation {
        Invocation::Train {
            data,
            shape,
            config,
            devices,
            enrol_held_out,
            save,
            workers,
            ..
        } => {
            cli.load_data(&data, shape).await?;
            let backend = match devices[..] {
                [] | [Backend::Flex] => BackendChoice::Cpu,
                _ => BackendChoice::Webgpu,
            };
            let settings = RunSettings::of(&config, backend, workers);
            let answers = cli.ask(Command::Train { settings }).await?;
            let Some(Reply::Done(report)) = answers.first() else {
                return Err("the run reported no result".into());
            };
            for note in report.interrupted.iter().chain(&report.note) {
                eprintln!("note: {note}");
            }
            if report.stopped {
                eprintln!("note: the run was stopped early");
            }
            let mut line = merged(
                serde_json::to_value(&report.result).expect("results serialise"),
                analysis_fields(&answers),
            );
            if let Some(images_per_class) = enrol_held_out {
                let enrolled = cli.ask(Command::EnrolHeldOut { images_per_class }).await?;
                let Some(Reply::OpenSet(report)) = enrolled.first() else {
                    return Err("the held-out classes were not enrolled".into());
                };
                line = merged(line, json!({ "after_enrolment": open_set_fields(report) }));
            }
            if let Some(path) = &save {
                let saved = cli.ask(Command::SaveModel).await?;
                let Some(Reply::ModelFile { bytes, .. }) = saved.first() else {
                    return Err("the model was not saved".into());
                };
                std::fs::write(path, bytes)
                    .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
                eprintln!("model saved to {}", path.display());
            }
            line
        }
        Invocation::Evaluate { model, data } => {
            let (bytes, shape) = read_model_for(&model, &data)?;
            cli.load_data(&data, shape).await?;
            let loaded = cli.load_model(&model, bytes).await?;
            let answers = cli.ask(Command::Evaluate).await?;
            let Some(Reply::Evaluated {
                test_pairs,
                test_pairs_similar,
                seen_images_left_out,
                evaluation,
                note,
            }) = answers.first()
            else {
                return Err("the model was not evaluated".into());
            };
            if let Some(note) = note {
                eprintln!("note: {note}");
            }
            say_what_was_left_out(*seen_images_left_out);
            let figures = json!({
                "test_pairs": test_pairs,
                "test_pairs_similar": test_pairs_similar,
                "test_acc": evaluation.as_ref().map(|e| e.test_acc),
                "best_threshold": evaluation.as_ref().map(|e| e.best_threshold),
                "test_acc_best": evaluation.as_ref().map(|e| e.test_acc_best),
                "auc": evaluation.as_ref().map(|e| e.auc),
            });
            merged(figures, analysis_fields(&loaded))
        }
        Invocation::Embed { model, data, out } => {
            let (bytes, shape) = read_model_for(&model, &data)?;
            cli.load_data(&data, shape).await?;
            let loaded = cli.load_model(&model, bytes).await?;
            let seen_images_left_out = loaded.iter().find_map(|reply| match reply {
                Reply::Analysis(report) => Some(report.seen_images_left_out),
                _ => None,
            });
            if let Some(left_out) = seen_images_left_out {
                say_what_was_left_out(left_out);
            }
            let answers = cli.ask(Command::ExportProjector).await?;
            let Some(Reply::Projector(files)) = answers.first() else {
                return Err("no embeddings were exported".into());
            };
            let write = |name: &str, bytes: &[u8]| {
                let path = out.join(name);
                std::fs::write(&path, bytes)
                    .map_err(|err| format!("cannot write {}: {err}", path.display()))
            };
            std::fs::create_dir_all(&out)
                .map_err(|err| format!("cannot make {}: {err}", out.display()))?;
            write(VECTORS_FILE, files.vectors_tsv.as_bytes())?;
            write(METADATA_FILE, files.metadata_tsv.as_bytes())?;
            write(SPRITE_FILE, &files.sprite_png)?;
            write(CONFIG_FILE, files.config_json.as_bytes())?;
            eprintln!(
                "wrote {} embeddings to {} ({VECTORS_FILE}, {METADATA_FILE}, {SPRITE_FILE}, \
                 {CONFIG_FILE}): open them in the Embedding Projector",
                files.rows,
                out.display()
            );
            json!({
                "out": out.display().to_string(),
                "rows": files.rows,
                "sprite_image_side": files.sprite_image_side,
                "seen_images_left_out": seen_images_left_out.flatten(),
            })
        }
        Invocation::Devices => json!({ "devices": devices() }),
        Invocation::Compare { model, images } => {
            cli.load_model(&model, read(&model)?).await?;
            let [left, right] = images.map(|path| {
                read(&path).map(|bytes| ImageRef::File {
                    file_name: path.display().to_string(),
                    bytes,
                })
            });
            let answers = cli
                .ask(Command::Compare {
                    left: left?,
                    right: right?,
                })
                .await?;
            let Some(Reply::Compared {
                distance,
                threshold,
                dissimilar,
                left_seen,
                right_seen,
                ..
            }) = answers.first()
            else {
                return Err("the images were not compared".into());
            };
            json!({
                "distance": distance,
                "threshold": threshold,
                "dissimilar": dissimilar,
                "left_seen": left_seen,
                "right_seen": right_seen,
            })
        }
        Invocation::Split {
            data,
            shape,
            config,
        } => {
            cli.load_data(&data, shape).await?;
            let settings = Some(RunSettings::of(&config, BackendChoice::Cpu, 1));
            let answers = cli.ask(Command::SplitList { settings }).await?;
            let Some(Reply::SplitList { tsv, .. }) = answers.first() else {
                return Err("the split was not listed".into());
            };
            // The session names each file from the folder's name on, as a browser does: the
            // list gives the paths the files were read from.
            let mut lines = tsv.lines();
            let mut listed = String::from(lines.next().unwrap_or_default());
            for line in lines {
                let (name, rest) = line.split_once('\t').unwrap_or((line, ""));
                let path = cli
                    .paths
                    .get(name)
                    .map_or_else(|| name.to_string(), |path| path.display().to_string());
                listed.push_str(&format!("\n{path}\t{rest}"));
            }
            return Ok(listed);
        }
    };
    Ok(line.to_string())
}
