//! The speed job of PERFORMANCE.md, natively: prints one JSON line per backend asked for. Its
//! `evaluation_ms` times the distances of the digits' 4,000 test pairs both ways (every pair's
//! two images through the tower, or each image embedded once).
//!
//! cargo run --release [--features wgpu] --example bench_steps -- [--backend flex|wgpu] [--batch 64] [--warmup 3]
//!     [--steps 30] [--layer-repeats 10] [--workers 1]
//!
//! `--workers N` trains as `siamese train --workers N` does: N - 1 helper threads each take a
//! share of every batch.

use siamese_web::backend::{Backend, training_device};
use siamese_web::benchmark::{BenchmarkJob, evaluation_times, run_benchmark};
use siamese_web::data::mnist::parse_mnist;
use siamese_web::session::Dataset;
use siamese_web::training::shares::ThreadHelpers;

/// The command line's allocator (src/bin/siamese/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MNIST: &[u8] = include_bytes!("../assets/mnist-10k.bin.gz");

async fn run() -> Result<String, String> {
    let mut job = BenchmarkJob::default();
    let mut backend = Backend::Flex;
    let mut workers = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |err: &dyn std::fmt::Display| format!("{flag} {value}: {err}");
        match flag.as_str() {
            "--backend" => backend = value.parse().map_err(|e: String| bad(&e))?,
            "--batch" => job.batch = value.parse().map_err(|e| bad(&e))?,
            "--warmup" => job.warmup = value.parse().map_err(|e| bad(&e))?,
            "--steps" => job.steps = value.parse().map_err(|e| bad(&e))?,
            "--layer-repeats" => job.layer_repeats = value.parse().map_err(|e| bad(&e))?,
            "--workers" => workers = value.parse().map_err(|e| bad(&e))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let device = training_device(backend).await?;
    let digits = parse_mnist(MNIST)?;
    let mut helpers = ThreadHelpers::new(workers.saturating_sub(1));
    let result = run_benchmark(&digits, &job, &backend.to_string(), &device, &mut helpers)
        .await
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_value(result).map_err(|e| e.to_string())?;
    line["runner"] = "native".into();
    line["workers"] = workers.max(1).into();
    let test = Dataset::mnist(&digits, None, None).test_part(None, &[]);
    let pairs = test.pairs.map_err(|e| e.to_string())?;
    let times = evaluation_times(&test.images, &pairs, &device)
        .await
        .map_err(|e| e.to_string())?;
    line["evaluation_ms"] = serde_json::to_value(times).map_err(|e| e.to_string())?;
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
