//! The fixed speed job of PERFORMANCE.md: the article's tower on 28x28 digits, Adam, batches of
//! `batch` pairs, timed step by step through the training loop itself. Every step's loss is read
//! back (the loop does it), so asynchronous backends cannot look faster than they are; the
//! first `warmup` steps (shader compilation, allocation) are reported apart and left out.
//! Then each stage of the tower is timed alone, forward and backward, to show where a step's
//! time goes.

use std::collections::BTreeMap;

use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::batch::PairBatch;
use crate::data::ImageSet;
use crate::inference::pair_distances;
use crate::loss::ContrastiveLoss;
use crate::model::{SiameseNet, SiameseNetConfig, euclidean_distance};
use crate::pairs::Pair;
use crate::training::shares::BatchHelpers;
use crate::training::{
    BatchProgress, Control, EpochSummary, TrainConfig, TrainError, TrainObserver, TrainingData,
    backend_error, train_sharing,
};

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchmarkJob {
    /// Pairs per step.
    pub batch: usize,
    pub warmup: usize,
    pub steps: usize,
    /// Timed repetitions of each stage of the tower (after one untimed); 0 leaves them out.
    #[serde(default)]
    pub layer_repeats: usize,
}

impl Default for BenchmarkJob {
    fn default() -> Self {
        Self {
            batch: 64,
            warmup: 3,
            steps: 30,
            layer_repeats: 10,
        }
    }
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Clone, Debug, Serialize)]
pub struct BenchmarkResult {
    pub backend: String,
    pub batch: usize,
    pub steps: usize,
    pub pairs_per_s: f64,
    pub ms_per_step_median: f64,
    pub ms_per_step_min: f64,
    pub ms_per_step_max: f64,
    pub first_step_ms: f64,
    /// Median ms of forward and backward through each stage alone, on one step's batch.
    pub layers_ms: BTreeMap<String, f64>,
}

/// Notes when each step ends and stops the run after the last one.
struct StepClock {
    last_step: usize,
    ends_s: Vec<f64>,
}

impl TrainObserver for StepClock {
    async fn on_batch(&mut self, progress: &BatchProgress) -> Control {
        self.ends_s.push(progress.elapsed_s);
        if self.ends_s.len() >= self.last_step {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    async fn on_epoch(&mut self, _: &EpochSummary) -> Control {
        Control::Continue
    }
}

/// Runs `job` on `set` (all of it trains: no validation part) and summarises the step times;
/// `helpers` take a share of every batch, as in training.
pub async fn run_benchmark(
    set: &ImageSet,
    job: &BenchmarkJob,
    backend: &str,
    device: &Device,
    helpers: &mut impl BatchHelpers,
) -> Result<BenchmarkResult, TrainError> {
    let total = job.warmup + job.steps;
    if job.steps == 0 || job.batch == 0 || 2 * set.len() < total * job.batch {
        return Err(TrainError::Settings(format!(
            "a benchmark of {total} steps of {} pairs needs at least {} images and 1 timed step",
            job.batch,
            (total * job.batch).div_ceil(2)
        )));
    }
    let config = TrainConfig::new()
        .with_epochs(1)
        .with_batch_size(job.batch)
        .with_validation_split(0.0);
    let data = TrainingData::split(set, &config)?;
    let mut clock = StepClock {
        last_step: total,
        ends_s: Vec::with_capacity(total),
    };
    train_sharing(&data, &config, device, helpers, &mut clock).await?;
    let mut result = summarise(&clock.ends_s, job, backend);
    if job.layer_repeats > 0 {
        result.layers_ms = layer_times(set, job, device).await?;
    }
    Ok(result)
}

/// Median ms of forward and backward through each stage of the tower, with inputs of the shapes
/// one step of `job.batch` pairs gives it. Each repetition ends by reading a value of the
/// gradient it computed, so asynchronous backends are timed to the end of their work.
async fn layer_times(
    set: &ImageSet,
    job: &BenchmarkJob,
    device: &Device,
) -> Result<BTreeMap<String, f64>, TrainError> {
    let config = SiameseNetConfig::for_shape(set.shape);
    let net: SiameseNet = config.init(device).map_err(TrainError::Settings)?;
    let images = 2 * job.batch;
    // Each stage's input is the previous stage's output, from one pass without gradients.
    let first = Tensor::<4>::random(
        [images, config.channels, config.height, config.width],
        Distribution::Default,
        device,
    );
    let after_pool1 = net.first_layer(first.clone()).detach();
    let after_conv2 = net.second_convolution(after_pool1.clone()).detach();
    let flat = net
        .relu_and_pool(after_conv2.clone())
        .flatten::<2>(1, 3)
        .detach();
    let embeddings = relu(net.dense_layer(flat.clone())).detach();
    let dissimilar = Tensor::<1>::random([job.batch], Distribution::Bernoulli(0.5), device);
    let loss_fn = ContrastiveLoss::new();

    let mut times = BTreeMap::new();
    let mut time = async |name: &str, stage: &dyn Fn() -> Tensor<1>| {
        let mut ms = Vec::with_capacity(job.layer_repeats);
        for repetition in 0..=job.layer_repeats {
            let start = Instant::now();
            stage()
                .into_scalar_async::<f32>()
                .await
                .map_err(backend_error)?;
            if repetition > 0 {
                ms.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
        ms.sort_by(f64::total_cmp);
        times.insert(name.to_string(), median(&ms));
        Ok::<(), TrainError>(())
    };
    time("1 conv1+relu+pool1", &|| {
        let grads = net.first_layer(first.clone()).sum().backward();
        net.conv1.weight.grad(&grads).unwrap().sum()
    })
    .await?;
    time("2 conv2", &|| {
        let x = after_pool1.clone().require_grad();
        let grads = net.second_convolution(x.clone()).sum().backward();
        x.grad(&grads).unwrap().sum() + net.conv2.weight.grad(&grads).unwrap().sum()
    })
    .await?;
    time("3 relu+pool2", &|| {
        let x = after_conv2.clone().require_grad();
        let grads = net.relu_and_pool(x.clone()).sum().backward();
        x.grad(&grads).unwrap().sum()
    })
    .await?;
    time("4 dense", &|| {
        let x = flat.clone().require_grad();
        let grads = relu(net.dense_layer(x.clone())).sum().backward();
        x.grad(&grads).unwrap().sum()
    })
    .await?;
    time("5 distance+loss", &|| {
        let x = embeddings.clone().require_grad();
        let left = x.clone().narrow(0, 0, job.batch);
        let right = x.clone().narrow(0, job.batch, job.batch);
        let loss = loss_fn.forward(euclidean_distance(left, right), dissimilar.clone());
        x.grad(&loss.backward()).unwrap().sum()
    })
    .await?;
    Ok(times)
}

fn summarise(ends_s: &[f64], job: &BenchmarkJob, backend: &str) -> BenchmarkResult {
    let mut step_ms: Vec<f64> = ends_s
        .windows(2)
        .skip(job.warmup.saturating_sub(1))
        .map(|w| (w[1] - w[0]) * 1000.0)
        .collect();
    let timed_s: f64 = step_ms.iter().sum::<f64>() / 1000.0;
    step_ms.sort_by(f64::total_cmp);
    BenchmarkResult {
        backend: backend.into(),
        batch: job.batch,
        steps: step_ms.len(),
        pairs_per_s: (step_ms.len() * job.batch) as f64 / timed_s,
        ms_per_step_median: median(&step_ms),
        ms_per_step_min: step_ms.first().copied().unwrap_or(f64::NAN),
        ms_per_step_max: step_ms.last().copied().unwrap_or(f64::NAN),
        first_step_ms: ends_s.first().map_or(f64::NAN, |s| s * 1000.0),
        layers_ms: BTreeMap::new(),
    }
}

/// The median of values sorted in ascending order; NaN for none.
/// Milliseconds to measure the distances of `pairs` of `set` without gradients, the two ways:
/// both images of every pair through the tower (as a training step does), and each image
/// embedded once with the distances taken from the embeddings (as validation and evaluation do).
pub async fn evaluation_times(
    set: &ImageSet,
    pairs: &[Pair],
    device: &Device,
) -> Result<BTreeMap<String, f64>, TrainError> {
    let device = device.clone().without_autodiff();
    let model = SiameseNetConfig::for_shape(set.shape)
        .init(&device)
        .map_err(TrainError::Settings)?;
    let started = Instant::now();
    for chunk in pairs.chunks(128) {
        let batch = PairBatch::new(set, chunk, &device);
        model
            .pair_distances(batch.images)
            .into_data_async()
            .await
            .map_err(backend_error)?;
    }
    let through_tower = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    pair_distances(&model, set, pairs, &device).await?;
    let embedded_once = started.elapsed().as_secs_f64() * 1e3;
    Ok(BTreeMap::from([
        ("pairs_through_tower".to_string(), through_tower),
        ("images_embedded_once".to_string(), embedded_once),
    ]))
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;
    use crate::training::shares::NoHelpers;

    #[test]
    fn every_stage_of_the_tower_is_timed_for_grey_and_rgb_images_of_any_size() {
        let device = Device::flex().autodiff();
        for shape in [ImageShape::new(1, 28, 28), ImageShape::new(3, 33, 24)] {
            let mut set = ImageSet::new(shape, vec!["a".into(), "b".into()]);
            for i in 0..8 {
                set.push(&vec![i as f32 / 8.0; shape.pixels()], i % 2);
            }
            let job = BenchmarkJob {
                batch: 4,
                warmup: 1,
                steps: 1,
                layer_repeats: 1,
            };
            let result =
                pollster::block_on(run_benchmark(&set, &job, "flex", &device, &mut NoHelpers))
                    .unwrap();
            let stages: Vec<&str> = result.layers_ms.keys().map(String::as_str).collect();
            assert_eq!(
                stages,
                [
                    "1 conv1+relu+pool1",
                    "2 conv2",
                    "3 relu+pool2",
                    "4 dense",
                    "5 distance+loss"
                ]
            );
            assert!(
                result
                    .layers_ms
                    .values()
                    .all(|&ms| ms > 0.0 && ms.is_finite())
            );
        }
    }

    #[test]
    fn step_times_leave_the_warm_up_out() {
        // Steps end at 2 s (the first, slow), 2.1, 2.3, 2.4, 2.5: warm-up of 2 steps leaves
        // the steps of 0.2, 0.1, 0.1 s.
        let job = BenchmarkJob {
            batch: 10,
            warmup: 2,
            steps: 3,
            layer_repeats: 0,
        };
        let result = summarise(&[2.0, 2.1, 2.3, 2.4, 2.5], &job, "flex");
        assert_eq!(result.steps, 3);
        assert!((result.first_step_ms - 2000.0).abs() < 1e-9);
        assert!((result.ms_per_step_median - 100.0).abs() < 1e-6);
        assert!((result.ms_per_step_max - 200.0).abs() < 1e-6);
        assert!((result.pairs_per_s - 30.0 / 0.4).abs() < 1e-6);
    }
}
