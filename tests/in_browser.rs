//! The core where it really runs: in a browser's dedicated worker, as the app trains.
//!
//! `wasm-pack test --headless --chrome --release -- --test in_browser --features webgpu-tests`
//! (WebGPU through `--enable-unsafe-webgpu`, given by webdriver.json; the CPU kernels as the full
//! module has them) and `--firefox` with `--features relaxed-simd` instead (Firefox ESR here has
//! no WebGPU: its run tests the CPU path with the CPU-only module's relaxed-SIMD kernels, and
//! leaves the WebGPU tests out rather than reporting them passed). Every read is `*_async`: a
//! blocking read panics in wasm.
#![cfg(target_arch = "wasm32")]

#[cfg(feature = "webgpu-tests")]
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use siamese_web::backend::{Backend, training_device};
use siamese_web::data::ImageShape;
use siamese_web::data::images::decode_image;
use siamese_web::data::mnist::parse_mnist;
use siamese_web::evaluation::{ARTICLE_THRESHOLD, accuracy_at};
use siamese_web::inference::{dissimilar_flags, pair_distances};
use siamese_web::kernel_checks;
use siamese_web::loss::ContrastiveLoss;
use siamese_web::model::SiameseNetConfig;
use siamese_web::pairs::PairSampler;
use siamese_web::training::{
    BatchProgress, Control, EpochSummary, TrainConfig, TrainObserver, TrainingData, train,
};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

const MNIST: &[u8] = include_bytes!("../assets/mnist-10k.bin.gz");

/// WebGPU, which the Chrome run must offer.
#[cfg(feature = "webgpu-tests")]
async fn webgpu() -> Device {
    training_device(Backend::Wgpu)
        .await
        .expect("Chrome must offer WebGPU (is webdriver.json's flag missing?)")
}

/// The devices this browser trains on: the CPU always, WebGPU in the Chrome run.
async fn devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut devices = vec![("cpu", training_device(Backend::Flex).await.unwrap())];
    #[cfg(feature = "webgpu-tests")]
    devices.push(("webgpu", webgpu().await));
    devices
}

async fn values(tensor: Tensor<1>) -> Vec<f32> {
    tensor
        .into_data_async()
        .await
        .unwrap()
        .try_to_vec()
        .unwrap()
}

#[wasm_bindgen_test]
async fn the_loss_by_hand_on_every_backend() {
    // Similar D=0.5 -> 0.25; dissimilar D=0.25 -> (1-0.25)^2 = 0.5625; dissimilar D=3 -> 0.
    // Mean = 0.8125 / 3. Swapped terms would give (0.25 + 0.0625 + 9) / 3 instead.
    for (name, device) in devices().await {
        let loss = ContrastiveLoss::new().forward(
            Tensor::from_floats([0.5, 0.25, 3.0], &device),
            Tensor::from_floats([0.0, 1.0, 1.0], &device),
        );
        let value = values(loss).await[0];
        assert!((value - 0.8125 / 3.0).abs() < 1e-5, "{name}: {value}");
    }
}

#[cfg(feature = "webgpu-tests")]
#[wasm_bindgen_test]
async fn webgpu_distances_and_loss_equal_the_cpus() {
    let gpu = webgpu().await;
    let cpu = Device::flex();
    cpu.seed(5);
    let model = SiameseNetConfig::new().init(&cpu).unwrap();
    let images = Tensor::<4>::random([16, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &cpu);
    let labels = Tensor::<1>::from_floats([0., 1., 0., 1., 1., 0., 1., 0.], &cpu);
    let loss = ContrastiveLoss::new();

    let cpu_distances = model.pair_distances(images.clone());
    let cpu_loss = values(loss.forward(cpu_distances.clone(), labels.clone())).await[0];
    let cpu_distances = values(cpu_distances).await;

    let gpu = gpu.without_autodiff();
    let gpu_model = model.to_device(&gpu);
    let gpu_distances = gpu_model.pair_distances(images.to_device(&gpu));
    let gpu_loss = values(loss.forward(gpu_distances.clone(), labels.to_device(&gpu))).await[0];
    let gpu_distances = values(gpu_distances).await;

    for (c, g) in cpu_distances.iter().zip(&gpu_distances) {
        assert!(
            (c - g).abs() <= 1e-4 * c.abs().max(1.0),
            "cpu {c} vs webgpu {g}"
        );
    }
    assert!(
        (cpu_loss - gpu_loss).abs() <= 1e-4 * cpu_loss.max(1.0),
        "{cpu_loss} vs {gpu_loss}"
    );
}

#[wasm_bindgen_test]
async fn one_step_lowers_the_loss_on_a_fixed_batch_on_every_backend() {
    use burn::optim::{AdamConfig, GradientsParams};
    for (name, device) in devices().await {
        device.seed(3);
        let mut model = SiameseNetConfig::new().init(&device).unwrap();
        let images = Tensor::<4>::random([32, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device);
        let dissimilar = Tensor::<1>::from_data(
            TensorData::new((0..16).map(|i| (i % 2) as f32).collect::<Vec<_>>(), [16]),
            &device,
        );
        let loss_fn = ContrastiveLoss::new();
        let mut optimizer = AdamConfig::new().init();
        let loss = loss_fn.forward(model.pair_distances(images.clone()), dissimilar.clone());
        let before = values(loss.clone()).await[0];
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-3, model, grads);
        let after = values(loss_fn.forward(model.pair_distances(images), dissimilar)).await[0];
        assert!(after < before, "{name}: {before} -> {after}");
    }
}

// The CPU kernels against Burn's operations, as the native unit tests compare them, with this
// browser's vectors: simd128 in Chrome's run, relaxed SIMD in Firefox's. Each logs the
// differences it measured.

#[wasm_bindgen_test]
async fn pooling_equals_burns_relu_and_max_pooling_and_their_gradients() {
    console_log!("{}", kernel_checks::relu_and_pooling().await);
}

#[wasm_bindgen_test]
async fn the_first_layer_equals_burns_convolution_relu_and_pooling_and_their_gradients() {
    console_log!("{}", kernel_checks::first_layer().await);
}

#[wasm_bindgen_test]
async fn the_winograd_convolution_equals_burns_and_its_gradients() {
    console_log!("{}", kernel_checks::winograd_convolution().await);
}

#[wasm_bindgen_test]
async fn the_dense_layer_equals_burns_and_its_gradients() {
    console_log!("{}", kernel_checks::dense_layer().await);
}

#[derive(Default)]
struct Steps {
    done: usize,
    stop_after: Option<usize>,
}

impl TrainObserver for Steps {
    async fn on_batch(&mut self, _: &BatchProgress) -> Control {
        self.done += 1;
        match self.stop_after {
            Some(limit) if self.done >= limit => Control::Stop,
            _ => Control::Continue,
        }
    }

    async fn on_epoch(&mut self, _: &EpochSummary) -> Control {
        Control::Continue
    }
}

/// Trains on a stratified sample of the digits for at most `steps` batches; returns the test
/// pair accuracy at the article's threshold.
async fn mnist_accuracy(device: &Device, images: usize, steps: usize) -> f64 {
    let digits = parse_mnist(MNIST).unwrap();
    let (_, sample) = digits.split(images as f64 / digits.len() as f64, 11);
    let (train_set, test_set) = sample.split(0.2, 12);
    let config = TrainConfig::new().with_epochs(100);
    let data = TrainingData::split(&train_set, &config).unwrap();
    let mut observer = Steps {
        stop_after: Some(steps),
        ..Steps::default()
    };
    let trained = train(&data, &config, device, &mut observer).await.unwrap();
    assert!(trained.stopped);
    assert_eq!(
        observer.done, steps,
        "cancelled between batches, right after the limit"
    );
    let test_pairs = PairSampler::with_seed(test_set.labels(), &test_set.class_names, 1)
        .unwrap()
        .epoch_pairs(0);
    let distances = pair_distances(&trained.model, &test_set, &test_pairs, device)
        .await
        .unwrap();
    accuracy_at(
        &distances,
        &dissimilar_flags(&test_pairs),
        ARTICLE_THRESHOLD,
    )
}

#[wasm_bindgen_test]
async fn training_on_real_digits_beats_chance_on_the_cpu_twice_in_a_row() {
    let cpu = training_device(Backend::Flex).await.unwrap();
    let first = mnist_accuracy(&cpu, 3000, 300).await;
    assert!(first > 0.9, "test pair accuracy after 300 steps: {first}");
    // A second model trains after the first without reloading.
    let second = mnist_accuracy(&cpu, 1000, 60).await;
    assert!(second > 0.75, "second run: {second}");
}

#[cfg(feature = "webgpu-tests")]
#[wasm_bindgen_test]
async fn training_on_real_digits_beats_chance_on_webgpu() {
    // The software GPU of a machine without one is slow: a short run.
    let accuracy = mnist_accuracy(&webgpu().await, 1000, 25).await;
    assert!(
        accuracy > 0.7,
        "test pair accuracy after 25 steps: {accuracy}"
    );
}

#[wasm_bindgen_test]
fn every_image_format_decodes_in_wasm() {
    use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb};
    let picture = DynamicImage::ImageRgb8(ImageBuffer::from_fn(16, 16, |x, _| {
        if x < 8 {
            Rgb([0, 0, 0])
        } else {
            Rgb([255, 255, 255])
        }
    }));
    for format in [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Gif,
        ImageFormat::Bmp,
        ImageFormat::WebP,
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        let image = match format {
            ImageFormat::Gif => DynamicImage::ImageRgba8(picture.to_rgba8()),
            _ => picture.clone(),
        };
        image.write_to(&mut bytes, format).unwrap();
        let values = decode_image("x", bytes.get_ref(), ImageShape::new(3, 8, 8)).unwrap();
        assert!(values[0] < 0.1 && values[7] > 0.9, "{format:?}: {values:?}");
    }
    assert!(decode_image("x.png", b"text", ImageShape::MNIST).is_err());
}
