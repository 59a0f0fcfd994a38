//! The browser edge: the only code that knows about `wasm_bindgen`. Training runs in a dedicated
//! Web Worker (`www/worker.js` loads this module and calls [`worker::start_worker`]), so the
//! page never freezes; page and worker talk only through the types of
//! [`crate::session::messages`].

pub mod helpers;
pub mod worker;
