//! A trained model as one file, to download, keep in the browser, or carry from a native run to
//! the page: what it was trained for (input shape, classes, threshold, settings) and its weights
//! as a Burn record (burnpack).
//!
//! Layout: `MAGIC` | metadata length (u32 LE) | weights length (u64 LE) | metadata JSON |
//! burnpack bytes. The lengths tell a cut-short download from a damaged file.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::split::ImageKey;
use crate::data::{ImageSet, ImageShape};
use crate::model::{SiameseNet, SiameseNetConfig};
use crate::training::{ThresholdSource, TrainConfig};

/// The first bytes of every model file; the last byte is the format version.
const MAGIC: &[u8; 8] = b"SIAMWEB\x01";
const HEADER_SIZE: usize = MAGIC.len() + 4 + 8;
/// The extension the page gives downloads and the native example suggests.
pub const MODEL_FILE_EXTENSION: &str = "siamese";

/// Everything about a model except its weights.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelInfo {
    pub shape: ImageShape,
    pub embedding_size: usize,
    pub class_names: Vec<String>,
    /// The distance above which a pair is called dissimilar.
    pub threshold: f32,
    /// Where `threshold` was chosen (files of the first version do not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_source: Option<ThresholdSource>,
    pub config: TrainConfig,
    /// What it was trained on, for people: "MNIST digits", "your images (120 files)".
    pub dataset: String,
    pub epochs_trained: usize,
    /// Test pair accuracy at `threshold` when it was trained; None when its data had no test
    /// pairs.
    pub test_acc: Option<f64>,
    /// Classes added after training from a few images each (absent from earlier files, and
    /// ignored by their reader).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enrolled: Vec<EnrolledClass>,
    /// The distance to the nearest class's prototype past which an image is none of the
    /// classes; None until the model's first analysis picks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_distance: Option<f32>,
    /// The images it trained and validated on, which every test figure computed with it leaves
    /// out; None in files of earlier versions, whose figures cannot be checked so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(type = "{ keys: string, labels: string }"))]
    pub seen_images: Option<SeenImages>,
}

/// The images a model was trained and validated on: their keys ([`ImageKey`]: a hash of each
/// image's decoded pixels), sorted, and a hash of every image's key with its class, which tells
/// a relabelled image from the one the model saw. Kept in the model file's metadata as
/// `{"keys": base64 of the keys' little-endian bytes, "labels": 16 hexadecimal digits}`: 8 bytes
/// an image, about 11 as base64.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenImages {
    keys: Vec<ImageKey>,
    labels: u64,
}

impl SeenImages {
    pub fn of(set: &ImageSet) -> Self {
        let mut labelled: Vec<(ImageKey, &str)> = (0..set.len())
            .map(|i| {
                (
                    set.origins()[i].key,
                    set.class_names[set.labels()[i]].as_str(),
                )
            })
            .collect();
        labelled.sort_unstable();
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for (key, class) in &labelled {
            hasher.update(&key.0.to_le_bytes());
            hasher.update(class.as_bytes());
            hasher.update(&[0]);
        }
        let mut keys: Vec<ImageKey> = labelled.into_iter().map(|(key, _)| key).collect();
        keys.dedup();
        Self {
            keys,
            labels: hasher.digest(),
        }
    }

    pub fn contains(&self, key: ImageKey) -> bool {
        self.keys.binary_search(&key).is_ok()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// [`SeenImages`] as the file keeps it.
#[derive(Serialize, Deserialize)]
struct SeenImagesText {
    keys: String,
    labels: String,
}

impl Serialize for SeenImages {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        let bytes: Vec<u8> = self
            .keys
            .iter()
            .flat_map(|key| key.0.to_le_bytes())
            .collect();
        SeenImagesText {
            keys: base64::engine::general_purpose::STANDARD.encode(bytes),
            labels: format!("{:016x}", self.labels),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SeenImages {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine;
        use serde::de::Error;
        let text = SeenImagesText::deserialize(deserializer)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.keys)
            .map_err(|err| D::Error::custom(format!("the images it trained on: {err}")))?;
        if bytes.len() % 8 != 0 {
            return Err(D::Error::custom(
                "the images it trained on: not a whole number of 8-byte keys",
            ));
        }
        let mut keys: Vec<ImageKey> = bytes
            .chunks_exact(8)
            .map(|key| ImageKey(u64::from_le_bytes(key.try_into().expect("8 bytes"))))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let labels = u64::from_str_radix(&text.labels, 16)
            .map_err(|err| D::Error::custom(format!("the images' classes: {err}")))?;
        Ok(Self { keys, labels })
    }
}

/// A class enrolled from a few images: their embeddings, whose mean is its prototype.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrolledClass {
    pub name: String,
    pub embeddings: Vec<Vec<f32>>,
}

#[derive(Debug, PartialEq)]
pub enum ModelFileError {
    NotAModel,
    Truncated,
    Unreadable(String),
    /// Metadata that reads but describes no model this app can use ([`ModelInfo::check`]).
    Invalid(String),
    WrongWeights(String),
    Backend(String),
}

impl std::fmt::Display for ModelFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelFileError::NotAModel => write!(f, "this is not a siamese-web model file"),
            ModelFileError::Truncated => {
                write!(f, "the model file is cut short (an interrupted download?)")
            }
            ModelFileError::Unreadable(why) | ModelFileError::Invalid(why) => {
                write!(f, "the model file is damaged: {why}")
            }
            ModelFileError::WrongWeights(why) => {
                write!(f, "the weights in the file do not fit its model: {why}")
            }
            ModelFileError::Backend(why) => write!(f, "cannot read the model's weights: {why}"),
        }
    }
}

impl std::error::Error for ModelFileError {}

/// The model's parameters, each flattened so one list holds tensors of every rank; read
/// asynchronously afterwards, since a browser cannot block on a GPU read.
#[derive(Default)]
struct ParameterCollector {
    path: Vec<String>,
    parameters: Vec<(String, ParamId, Vec<usize>, Tensor<1>)>,
}

impl ModuleVisitor for ParameterCollector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // The saved form is what `load_record` checks and maps back.
        let tensor = param.transform_for_save().val();
        let dims = tensor.dims().to_vec();
        // f32 whatever precision trained it: every reader loads that (WebGPU has no bf16).
        let flat = tensor
            .reshape([dims.iter().product::<usize>()])
            .cast(FloatDType::F32);
        self.parameters
            .push((self.path.join("."), param.id, dims, flat));
    }
}

/// Writes `model` and `info` as a model file.
pub async fn save_model(model: &SiameseNet, info: &ModelInfo) -> Result<Vec<u8>, ModelFileError> {
    let mut collector = ParameterCollector::default();
    model.visit(&mut collector);
    let mut tensors = Vec::with_capacity(collector.parameters.len());
    for (path, id, dims, flat) in collector.parameters {
        let data = flat
            .into_data_async()
            .await
            .map_err(|err| ModelFileError::Backend(format!("{err:?}")))?;
        let (bytes, _, dtype) = data.into_parts();
        tensors.push(burn_pack::Tensor::new(
            path,
            dtype,
            dims,
            Some(id.val()),
            bytes,
        ));
    }
    let weights = burn_pack::Writer::new(tensors)
        .into_bytes()
        .map_err(|err| ModelFileError::Backend(err.to_string()))?;
    let metadata = serde_json::to_vec(info).expect("model info serialises");
    Ok(model_file(&metadata, &weights))
}

/// The file of `metadata` (JSON) and `weights` (burnpack) as they are: public so that tests
/// can write the damaged files a user might load.
pub fn model_file(metadata: &[u8], weights: &[u8]) -> Vec<u8> {
    let mut file = Vec::with_capacity(HEADER_SIZE + metadata.len() + weights.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&(metadata.len() as u32).to_le_bytes());
    file.extend_from_slice(&(weights.len() as u64).to_le_bytes());
    file.extend_from_slice(metadata);
    file.extend_from_slice(weights);
    file
}

impl ModelInfo {
    /// Refuses metadata that describes no model this app can use, before anything is built
    /// from it: the weights' `weights_len` bytes must hold every parameter of the model it
    /// describes (so an absurd size allocates nothing), and each enrolled embedding must have
    /// the model's length (recognition measures it against the model's embeddings).
    fn check(&self, weights_len: usize) -> Result<(), String> {
        let channels = self.shape.channels;
        if !matches!(channels, 1 | 3) {
            return Err(format!(
                "images must have 1 (grey) or 3 (RGB) channels, not {channels}"
            ));
        }
        if self.embedding_size == 0 {
            return Err("the embedding size must be at least 1".into());
        }
        let parameters = SiameseNetConfig::for_shape(self.shape)
            .with_embedding_size(self.embedding_size)
            .parameters()?;
        // `save_model` writes every weight as f32.
        if parameters.saturating_mul(size_of::<f32>()) > weights_len {
            return Err(format!(
                "it describes a model of {parameters} weights, more than its {weights_len} \
                 bytes of weights hold"
            ));
        }
        self.check_classes()?;
        for (name, distance) in [
            ("threshold", Some(self.threshold)),
            ("unknown distance", self.unknown_distance),
        ] {
            if let Some(distance) = distance
                && !(distance.is_finite() && distance >= 0.0)
            {
                return Err(format!(
                    "the {name} must be a distance (0 or more), not {distance}"
                ));
            }
        }
        // The settings it was trained with are a record, not checked against today's ranges (a
        // file of an earlier version may hold a validation split they no longer allow); only
        // its held-out classes are used with it.
        self.config
            .check_held_out(&self.class_names)
            .map_err(|err| err.to_string())?;
        self.check_enrolled()
    }

    fn check_classes(&self) -> Result<(), String> {
        if self.class_names.is_empty() {
            return Err("it has no class names".into());
        }
        for (index, name) in self.class_names.iter().enumerate() {
            if name.is_empty() {
                return Err("it has an empty class name".into());
            }
            if self.class_names[..index].contains(name) {
                return Err(format!("it names the class {name:?} twice"));
            }
        }
        Ok(())
    }

    /// Enrolled classes as enrolment makes them: named, new or held out of training, each
    /// from one or more embeddings of the model's length.
    fn check_enrolled(&self) -> Result<(), String> {
        let held_out = self.config.held_out();
        for (index, class) in self.enrolled.iter().enumerate() {
            let name = &class.name;
            if name.trim().is_empty() {
                return Err("it has an enrolled class without a name".into());
            }
            if self.enrolled[..index]
                .iter()
                .any(|other| &other.name == name)
            {
                return Err(format!("the class {name:?} is enrolled twice"));
            }
            if self.class_names.contains(name) && !held_out.contains(name) {
                return Err(format!("the class {name:?} is enrolled but was trained on"));
            }
            if class.embeddings.is_empty() {
                return Err(format!("the enrolled class {name:?} has no embeddings"));
            }
            for embedding in &class.embeddings {
                if embedding.len() != self.embedding_size {
                    return Err(format!(
                        "the enrolled class {name:?} has an embedding of {} values, not {}",
                        embedding.len(),
                        self.embedding_size
                    ));
                }
                if !embedding.iter().all(|value| value.is_finite()) {
                    return Err(format!(
                        "the enrolled class {name:?} has an embedding with a value that is not \
                         finite"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Reads only the metadata, and checks it: enough to refuse a model before building it.
/// Returns the weights.
pub fn read_model_info(file: &[u8]) -> Result<(ModelInfo, &[u8]), ModelFileError> {
    let version = MAGIC.len() - 1;
    if file.len() < MAGIC.len() || file[..version] != MAGIC[..version] {
        return Err(ModelFileError::NotAModel);
    }
    if file[version] != MAGIC[version] {
        return Err(ModelFileError::Unreadable(format!(
            "format version {} is not one this app reads (it reads {})",
            file[version], MAGIC[version]
        )));
    }
    let header = file.get(..HEADER_SIZE).ok_or(ModelFileError::Truncated)?;
    let metadata_len = u32::from_le_bytes(header[8..12].try_into().unwrap()) as usize;
    let weights_len = u64::from_le_bytes(header[12..20].try_into().unwrap()) as usize;
    let body = &file[HEADER_SIZE..];
    let expected = metadata_len.saturating_add(weights_len);
    if body.len() < expected {
        return Err(ModelFileError::Truncated);
    }
    if body.len() > expected {
        return Err(ModelFileError::Unreadable(format!(
            "{} unexpected bytes after the weights",
            body.len() - expected
        )));
    }
    let info: ModelInfo = serde_json::from_slice(&body[..metadata_len])
        .map_err(|err| ModelFileError::Unreadable(err.to_string()))?;
    let weights = &body[metadata_len..];
    info.check(weights.len()).map_err(ModelFileError::Invalid)?;
    Ok((info, weights))
}

/// Builds the model a file holds on `device`.
pub fn load_model(file: &[u8], device: &Device) -> Result<(SiameseNet, ModelInfo), ModelFileError> {
    let (info, weights) = read_model_info(file)?;
    let config = SiameseNetConfig::for_shape(info.shape).with_embedding_size(info.embedding_size);
    let model = config.init(device).map_err(ModelFileError::Unreadable)?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
        .map_err(|err| ModelFileError::Unreadable(err.to_string()))?;
    let model = model
        .try_load_record(record)
        .map_err(|err| ModelFileError::WrongWeights(err.to_string()))?;
    Ok((model, info))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{DType, Distribution};
    use serde_json::json;

    use super::*;

    fn info(shape: ImageShape) -> ModelInfo {
        ModelInfo {
            shape,
            embedding_size: 128,
            class_names: vec!["cat".into(), "dog".into()],
            threshold: 0.6,
            threshold_source: Some(ThresholdSource::Validation),
            config: TrainConfig::new(),
            dataset: "test".into(),
            epochs_trained: 1,
            test_acc: Some(0.9),
            enrolled: Vec::new(),
            unknown_distance: None,
            seen_images: None,
        }
    }

    /// `info` with a class held out of training, enrolled afterwards from three images, and an
    /// unknown distance: every part of the metadata present.
    fn enrolled_info(shape: ImageShape) -> ModelInfo {
        let mut info = info(shape);
        info.class_names.push("bird".into());
        info.config.held_out_classes = Some(vec!["bird".into()]);
        info.enrolled = vec![EnrolledClass {
            name: "bird".into(),
            embeddings: vec![vec![0.5; 128]; 3],
        }];
        info.unknown_distance = Some(0.4);
        info
    }

    fn distances(model: &SiameseNet, images: &Tensor<4>) -> Vec<f32> {
        model
            .pair_distances(images.clone())
            .into_data()
            .try_to_vec()
            .unwrap()
    }

    #[test]
    fn a_saved_model_loads_with_identical_distances_and_metadata() {
        let device = Device::flex();
        let shape = ImageShape::new(3, 16, 12);
        let model = SiameseNetConfig::for_shape(shape).init(&device).unwrap();
        let file = pollster::block_on(save_model(&model, &info(shape))).unwrap();
        let (loaded, loaded_info) = load_model(&file, &device).unwrap();
        let images = Tensor::<4>::random([6, 3, 16, 12], Distribution::Uniform(0.0, 1.0), &device);
        assert_eq!(distances(&loaded, &images), distances(&model, &images));
        assert_eq!(loaded_info.shape, shape);
        assert_eq!(loaded_info.class_names, ["cat", "dog"]);
        assert_eq!(loaded_info.threshold, 0.6);
    }

    #[test]
    fn enrolled_classes_are_kept_and_files_of_the_previous_version_still_read() {
        let device = Device::flex();
        let shape = ImageShape::MNIST;
        let model = SiameseNetConfig::for_shape(shape).init(&device).unwrap();
        let newer = enrolled_info(shape);
        let file = pollster::block_on(save_model(&model, &newer)).unwrap();
        let (_, read) = load_model(&file, &device).unwrap();
        assert_eq!(read.config.held_out(), ["bird"]);
        assert_eq!(read.enrolled[0].embeddings.len(), 3);
        assert_eq!(read.unknown_distance, Some(0.4));

        // The previous version wrote none of the three fields, and allowed validation splits
        // up to 1.
        let (_, weights) = read_model_info(&file).unwrap();
        let mut metadata: serde_json::Value = serde_json::to_value(&newer).unwrap();
        let fields = metadata.as_object_mut().unwrap();
        fields.remove("enrolled");
        fields.remove("unknown_distance");
        let config = fields["config"].as_object_mut().unwrap();
        config.remove("held_out_classes");
        config["validation_split"] = 0.95.into();
        let older = model_file(&serde_json::to_vec(&metadata).unwrap(), weights);
        let (_, read) = load_model(&older, &device).unwrap();
        assert!(read.enrolled.is_empty() && read.config.held_out().is_empty());
        assert_eq!(read.unknown_distance, None);
    }

    #[test]
    fn the_images_a_model_saw_are_kept_in_its_file_eight_bytes_each() {
        let device = Device::flex();
        let shape = ImageShape::MNIST;
        let model = SiameseNetConfig::for_shape(shape).init(&device).unwrap();
        let mut digits = ImageSet::new(shape, vec!["0".into()]);
        for value in 0..100 {
            digits.push(&vec![value as f32 / 255.0; shape.pixels()], 0);
        }
        let mut seen = info(shape);
        seen.seen_images = Some(SeenImages::of(&digits));
        let without = pollster::block_on(save_model(&model, &info(shape))).unwrap();
        let file = pollster::block_on(save_model(&model, &seen)).unwrap();
        let (_, read) = load_model(&file, &device).unwrap();
        let keys = read.seen_images.unwrap();
        assert_eq!(keys.len(), 100);
        assert!((0..100).all(|i| keys.contains(digits.origins()[i].key)));
        let mut other = ImageSet::new(shape, vec!["0".into()]);
        other.push(&vec![0.5; shape.pixels()], 0);
        assert!(!keys.contains(other.origins()[0].key));
        // 8 bytes an image, as base64 (4 characters for every 3 bytes) in the JSON, and the
        // hash of their classes.
        let grown = file.len() - without.len();
        assert!(
            (1066..1130).contains(&grown),
            "{grown} bytes for 100 images"
        );
        // The same images, one of them under another class, are not what the model saw.
        let mut relabelled = ImageSet::new(shape, vec!["0".into(), "1".into()]);
        for i in 0..100 {
            relabelled.push(&digits.image(i), usize::from(i == 7));
        }
        let relabelled = SeenImages::of(&relabelled);
        assert_eq!(relabelled.len(), keys.len());
        assert_ne!(relabelled, keys);
        // A file without the field (an earlier version's) reads as unknown.
        assert_eq!(load_model(&without, &device).unwrap().1.seen_images, None);
    }

    /// Casts every weight to half precision, as a model trained in f16 on a GPU has them.
    struct ToHalf;

    impl burn::module::ModuleMapper for ToHalf {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|tensor| tensor.cast(FloatDType::F16))
        }
    }

    #[test]
    fn a_half_precision_model_is_written_in_f32() {
        let device = Device::flex();
        let shape = ImageShape::MNIST;
        let model = SiameseNetConfig::for_shape(shape)
            .init(&device)
            .unwrap()
            .map(&mut ToHalf);
        assert_eq!(model.dense.weight.val().dtype(), DType::F16);
        let file = pollster::block_on(save_model(&model, &info(shape))).unwrap();
        let (loaded, _) = load_model(&file, &device).unwrap();
        assert_eq!(loaded.dense.weight.val().dtype(), DType::F32);
        let widened: Vec<f32> = model
            .dense
            .weight
            .val()
            .cast(FloatDType::F32)
            .into_data()
            .try_to_vec()
            .unwrap();
        let read: Vec<f32> = loaded.dense.weight.val().into_data().try_to_vec().unwrap();
        assert_eq!(read, widened);
    }

    #[test]
    fn files_that_are_not_whole_models_of_ours_are_refused() {
        let device = Device::flex();
        let shape = ImageShape::MNIST;
        let model = SiameseNetConfig::for_shape(shape).init(&device).unwrap();
        let file = pollster::block_on(save_model(&model, &info(shape))).unwrap();
        let refused = |bytes: &[u8]| load_model(bytes, &device).map(|_| ()).unwrap_err();

        assert_eq!(
            refused(b"\x89PNG\r\n\x1a\nnot a model"),
            ModelFileError::NotAModel
        );
        assert_eq!(refused(b""), ModelFileError::NotAModel);
        assert_eq!(refused(&file[..10]), ModelFileError::Truncated);
        assert_eq!(refused(&file[..file.len() / 2]), ModelFileError::Truncated);
        assert_eq!(refused(&file[..file.len() - 1]), ModelFileError::Truncated);

        let mut newer = file.clone();
        newer[7] = 9;
        assert!(refused(&newer).to_string().contains("format version 9"));

        // Metadata that claims another input size than the weights were made for: a smaller
        // one (a larger one needs more weights than the file holds, and is refused before).
        let (_, weights) = read_model_info(&file).unwrap();
        let metadata = serde_json::to_vec(&info(ImageShape::new(1, 20, 20))).unwrap();
        let lying = model_file(&metadata, weights);
        assert!(matches!(refused(&lying), ModelFileError::WrongWeights(_)));

        // Damaged weights of the right length.
        let mut damaged = file.clone();
        let weights_start = file.len() - weights.len();
        damaged[weights_start..weights_start + 16].fill(0xff);
        assert!(matches!(
            refused(&damaged),
            ModelFileError::Unreadable(_) | ModelFileError::WrongWeights(_)
        ));
    }

    #[test]
    fn metadata_that_describes_no_usable_model_is_refused_before_the_model_is_built() {
        let device = Device::flex();
        let shape = ImageShape::MNIST;
        let model = SiameseNetConfig::for_shape(shape).init(&device).unwrap();
        let valid = enrolled_info(shape);
        let file = pollster::block_on(save_model(&model, &valid)).unwrap();
        let (_, weights) = read_model_info(&file).unwrap();
        let metadata = serde_json::to_value(&valid).unwrap();
        let bird = metadata["enrolled"][0].clone();
        // Each: where the metadata is changed, to what, and what the refusal must say. Built,
        // the model of 2^40-value embeddings would allocate petabytes.
        let cases = [
            (
                "/shape/channels",
                json!(2),
                "1 (grey) or 3 (RGB) channels, not 2",
            ),
            (
                "/shape/channels",
                json!(0),
                "1 (grey) or 3 (RGB) channels, not 0",
            ),
            ("/shape/height", json!(9), "too small for the network"),
            ("/shape/width", json!(1000), "weights"),
            ("/shape/width", json!(u64::MAX), "too large for the network"),
            (
                "/embedding_size",
                json!(0),
                "embedding size must be at least 1",
            ),
            ("/embedding_size", json!(1u64 << 40), "weights"),
            ("/class_names", json!([]), "no class names"),
            ("/class_names/1", json!(""), "an empty class name"),
            ("/class_names/1", json!("cat"), "\"cat\" twice"),
            ("/threshold", json!(-0.5), "threshold must be a distance"),
            // Past f32's range: read as infinity.
            ("/threshold", json!(1e39), "threshold must be a distance"),
            (
                "/unknown_distance",
                json!(-1.0),
                "unknown distance must be a distance",
            ),
            (
                "/unknown_distance",
                json!(1e39),
                "unknown distance must be a distance",
            ),
            (
                "/config/held_out_classes/0",
                json!("fish"),
                "no class \"fish\" to hold out",
            ),
            (
                "/enrolled/0/name",
                json!(" "),
                "an enrolled class without a name",
            ),
            (
                "/enrolled/0/name",
                json!("cat"),
                "\"cat\" is enrolled but was trained on",
            ),
            (
                "/enrolled/0/embeddings",
                json!([]),
                "\"bird\" has no embeddings",
            ),
            (
                "/enrolled/0/embeddings/1",
                json!([0.1, 0.2]),
                "an embedding of 2 values",
            ),
            (
                "/enrolled/0/embeddings/2/5",
                json!(1e39),
                "a value that is not finite",
            ),
            (
                "/enrolled",
                json!([bird.clone(), bird]),
                "\"bird\" is enrolled twice",
            ),
        ];
        let mut wrong = Vec::new();
        for (pointer, value, expected) in cases {
            let mut damaged = metadata.clone();
            *damaged.pointer_mut(pointer).unwrap() = value.clone();
            let file = model_file(&serde_json::to_vec(&damaged).unwrap(), weights);
            match read_model_info(&file) {
                Err(ModelFileError::Invalid(why)) if why.contains(expected) => {}
                other => {
                    let value: String = value.to_string().chars().take(40).collect();
                    wrong.push(format!("{pointer} = {value}: {:?}", other.map(|_| ())));
                }
            }
        }
        assert!(wrong.is_empty(), "not refused as expected: {wrong:#?}");
    }
}
