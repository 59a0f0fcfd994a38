//! The browser's CPU-only module: the library's exports (its worker and helper entry points),
//! built without WebGPU. `www/worker.js` loads it unless the browser has a real GPU.
pub use siamese_web::*;
