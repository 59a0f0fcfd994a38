//! The fixed speed job of PERFORMANCE.md: the article's tower on 28x28 digits, Adam, batches of
//! `batch` pairs, timed step by step through the training loop itself. Every step's loss is read
//! back (the loop does it), so asynchronous backends cannot look faster than they are; the
//! first `warmup` steps (shader compilation, allocation) are reported apart and left out.

use serde::{Deserialize, Serialize};

use crate::data::ImageSet;
use crate::training::{
    BatchProgress, Control, EpochSummary, TrainConfig, TrainError, TrainObserver, TrainingData,
    train,
};
use burn::tensor::Device;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchmarkJob {
    /// Pairs per step.
    pub batch: usize,
    pub warmup: usize,
    pub steps: usize,
}

impl Default for BenchmarkJob {
    fn default() -> Self {
        Self {
            batch: 64,
            warmup: 3,
            steps: 30,
        }
    }
}

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

/// Runs `job` on `set` (all of it trains: no validation part) and summarises the step times.
pub async fn run_benchmark(
    set: &ImageSet,
    job: &BenchmarkJob,
    backend: &str,
    device: &Device,
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
    train(&data, &config, device, &mut clock).await?;
    Ok(summarise(&clock.ends_s, job, backend))
}

fn summarise(ends_s: &[f64], job: &BenchmarkJob, backend: &str) -> BenchmarkResult {
    let mut step_ms: Vec<f64> = ends_s
        .windows(2)
        .skip(job.warmup.saturating_sub(1))
        .map(|w| (w[1] - w[0]) * 1000.0)
        .collect();
    let timed_s: f64 = step_ms.iter().sum::<f64>() / 1000.0;
    step_ms.sort_by(f64::total_cmp);
    let median = match step_ms.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => step_ms[n / 2],
        n => (step_ms[n / 2 - 1] + step_ms[n / 2]) / 2.0,
    };
    BenchmarkResult {
        backend: backend.into(),
        batch: job.batch,
        steps: step_ms.len(),
        pairs_per_s: (step_ms.len() * job.batch) as f64 / timed_s,
        ms_per_step_median: median,
        ms_per_step_min: step_ms.first().copied().unwrap_or(f64::NAN),
        ms_per_step_max: step_ms.last().copied().unwrap_or(f64::NAN),
        first_step_ms: ends_s.first().map_or(f64::NAN, |s| s * 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_times_leave_the_warm_up_out() {
        // Steps end at 2 s (the first, slow), 2.1, 2.3, 2.4, 2.5: warm-up of 2 steps leaves
        // the steps of 0.2, 0.1, 0.1 s.
        let job = BenchmarkJob {
            batch: 10,
            warmup: 2,
            steps: 3,
        };
        let result = summarise(&[2.0, 2.1, 2.3, 2.4, 2.5], &job, "flex");
        assert_eq!(result.steps, 3);
        assert!((result.first_step_ms - 2000.0).abs() < 1e-9);
        assert!((result.ms_per_step_median - 100.0).abs() < 1e-6);
        assert!((result.ms_per_step_max - 200.0).abs() < 1e-6);
        assert!((result.pairs_per_s - 30.0 / 0.4).abs() < 1e-6);
    }
}
