//! `siamese`: the page's job on the command line, through the same session as the page and the
//! widget (the same folder rules, split, pairs, figures and model file). Progress and the files
//! that cannot be used go to stderr; one JSON line with the figures goes to stdout last.
//!
//!     siamese train (--data DIR | --mnist) [--image-size 28x28-grey] [--epochs 10] [--save FILE] ...
//!     siamese evaluate --model FILE (--data DIR | --mnist)
//!     siamese embed --model FILE (--data DIR | --mnist) --out DIR
//!     siamese compare --model FILE IMAGE IMAGE
//!
//! `siamese help` lists every option. Native only: Cargo builds every target of the crate for
//! wasm32 too (the app's build), where this is an empty module.
#![cfg_attr(target_arch = "wasm32", no_main)]

#[cfg(not(target_arch = "wasm32"))]
mod commands;
#[cfg(not(target_arch = "wasm32"))]
mod options;
#[cfg(not(target_arch = "wasm32"))]
mod terminal;

/// Training allocates and frees the same large buffers every step: mimalloc reuses them where
/// the system's allocator returned them to the kernel and faulted them in again (1.09x the
/// pairs/s on one thread, PERFORMANCE.md).
#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match options::parse(&args) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{}", options::USAGE);
            return;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{}", options::USAGE);
            std::process::exit(2);
        }
    };
    if let Some(threads) = parsed.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .expect("the thread pool is built before any work");
    }
    match pollster::block_on(commands::run(parsed.invocation)) {
        Ok(line) => println!("{line}"),
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    }
}
