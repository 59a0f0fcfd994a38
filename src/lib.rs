//! siamese-web: a Siamese convolutional network trained with a contrastive loss, on Burn.
//!
//! The data path reads in one direction, one module per arrow:
//! `data` (decoded, normalised images) -> `pairs` -> `batch` -> `training` (`model` -> `loss`)
//! -> `inference` and `evaluation` (embeddings, distances -> metrics) -> `open_set` (each class
//! as a prototype; "none of the above"). `session` holds the data
//! and the current model and answers every command of the page, the widget and the command line
//! with the same policies. Nothing here knows about the browser, so the same core is built and
//! tested natively and compiled to wasm32 unchanged; `web` is the browser's thin adapter.

pub mod backend;
pub mod batch;
pub mod benchmark;
mod cpu_kernels;
pub mod data;
pub mod embeddings;
pub mod evaluation;
pub mod inference;
#[cfg(feature = "kernel-checks")]
pub mod kernel_checks;
pub mod loss;
pub mod model;
pub mod model_file;
pub mod open_set;
pub mod pairs;
pub mod projector;
pub mod rng;
pub mod session;
pub mod training;
#[cfg(target_arch = "wasm32")]
pub mod web;
