//! siamese-web: a Siamese convolutional network trained with a contrastive loss, on Burn.
//!
//! The data path reads in one direction, one module per arrow:
//! `data` (decoded, normalised images) -> `pairs` -> `training` (batches -> `model` -> `loss`)
//! -> `evaluation` (distances -> metrics). Nothing here knows about the browser, so the same core
//! is built and tested natively and compiled to wasm32 unchanged.

pub mod backend;
pub mod benchmark;
pub mod data;
pub mod embeddings;
pub mod evaluation;
pub mod loss;
pub mod model;
pub mod model_file;
pub mod pairs;
pub mod rng;
pub mod training;
#[cfg(target_arch = "wasm32")]
pub mod web;
