//! The browser's training helpers: Web Workers, each with its own instance of this module (the
//! compiled module is posted to them, not fetched again) and no shared memory, so they run on
//! any static host without cross-origin isolation. The training worker posts each its share of
//! a batch with the weights; it answers with the share's gradients
//! (`crate::training::shares`). `www/helper.js` starts one and calls [`start_helper`].

use std::cell::RefCell;

use js_sys::{Array, Float32Array, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::batch::HostBatch;
use crate::data::ImageShape;
use crate::training::shares::{BatchHelpers, ShareGradients, ShareJob, ShareWorker};

/// Helpers of one run; dropping them ends their workers.
pub struct WorkerHelpers {
    helpers: Vec<Helper>,
}

struct Helper {
    worker: Worker,
    /// The answer to the job in flight.
    answer: Option<Promise>,
    failed: bool,
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

impl WorkerHelpers {
    /// Starts `count` helpers from `script` and waits until each has loaded the module; one
    /// that cannot is left out, said on the console.
    pub async fn start(count: usize, script: &str) -> Self {
        let mut starting = Vec::with_capacity(count);
        for _ in 0..count {
            match spawn(script) {
                Ok(started) => starting.push(started),
                Err(why) => warn(&format!("a training helper cannot start: {why}")),
            }
        }
        let mut helpers = Vec::with_capacity(starting.len());
        for (worker, ready) in starting {
            match answer(ready).await {
                Ok(_) => helpers.push(Helper {
                    worker,
                    answer: None,
                    failed: false,
                }),
                Err(why) => {
                    worker.terminate();
                    warn(&format!("a training helper cannot start: {why}"));
                }
            }
        }
        Self { helpers }
    }
}

/// A new helper worker, sent the module, and the promise of its `ready`.
fn spawn(script: &str) -> Result<(Worker, Promise), String> {
    let options = WorkerOptions::new();
    options.set_type(WorkerType::Module);
    let worker = Worker::new_with_options(script, &options).map_err(describe)?;
    let ready = next_message(&worker);
    let message = Object::new();
    set(&message, "module", &wasm_bindgen::module());
    worker.post_message(&message).map_err(describe)?;
    Ok((worker, ready))
}

/// The worker's next message, or its error event.
fn next_message(worker: &Worker) -> Promise {
    Promise::new(&mut |resolve, reject| {
        worker.set_onmessage(Some(&resolve));
        worker.set_onerror(Some(&reject));
    })
}

/// A helper's message: its `data`, or its `error` as the reason.
async fn answer(message: Promise) -> Result<JsValue, String> {
    let event = JsFuture::from(message).await.map_err(describe)?;
    let data = event.unchecked_into::<MessageEvent>().data();
    match Reflect::get(&data, &"error".into())
        .ok()
        .and_then(|e| e.as_string())
    {
        Some(error) => Err(error),
        None => Ok(data),
    }
}

impl BatchHelpers for WorkerHelpers {
    fn count(&mut self) -> usize {
        self.helpers.retain(|helper| !helper.failed);
        self.helpers.len()
    }

    fn start(&mut self, helper: usize, job: ShareJob<&[f32]>) {
        let helper = &mut self.helpers[helper];
        let message = Object::new();
        let arrays = [
            ("parameters", job.parameters),
            ("pixels", job.batch.pixels()),
            ("dissimilar", job.batch.dissimilar()),
        ]
        .map(|(name, values)| {
            let array = Float32Array::from(values);
            set(&message, name, &array);
            array.buffer()
        });
        let shape = serde_wasm_bindgen::to_value(&job.batch.shape()).expect("a shape serialises");
        set(&message, "shape", &shape);
        set(&message, "margin", &job.margin.into());
        set(&message, "scale", &job.scale.into());
        helper.answer = Some(next_message(&helper.worker));
        let transfer = Array::from_iter(arrays);
        if let Err(err) = helper
            .worker
            .post_message_with_transfer(&message, &transfer)
        {
            warn(&format!(
                "a training helper cannot be sent its share: {}",
                describe(err)
            ));
            helper.answer = None;
        }
    }

    async fn finish(&mut self, helper: usize) -> Result<ShareGradients, String> {
        let helper = &mut self.helpers[helper];
        let result = match helper.answer.take() {
            Some(message) => answer(message).await.and_then(|data| {
                let gradients = Reflect::get(&data, &"gradients".into()).map_err(describe)?;
                let loss = Reflect::get(&data, &"loss".into()).map_err(describe)?;
                Ok(ShareGradients {
                    gradients: gradients
                        .dyn_into::<Float32Array>()
                        .map_err(|_| "its answer has no gradients")?
                        .to_vec(),
                    loss: loss.as_f64().ok_or("its answer has no loss")? as f32,
                })
            }),
            None => Err("it was never sent its share".to_string()),
        };
        helper.failed = result.is_err();
        result
    }
}

fn set(object: &Object, name: &str, value: &JsValue) {
    Reflect::set(object, &name.into(), value).expect("setting a field of a plain object");
}

fn describe(err: JsValue) -> String {
    Reflect::get(&err, &"message".into())
        .ok()
        .and_then(|message| message.as_string())
        .unwrap_or_else(|| format!("{err:?}"))
}

fn warn(message: &str) {
    web_sys::console::warn_1(&format!("siamese-web: {message}").into());
}

thread_local! {
    /// A helper's model, kept between jobs.
    static SHARE_WORKER: RefCell<ShareWorker> = RefCell::new(ShareWorker::default());
}

fn helper_scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post_from_helper(message: &Object, transfer: &Array) {
    if let Err(err) = helper_scope().post_message_with_transfer(message, transfer) {
        web_sys::console::error_2(&"siamese-web: a helper's postMessage failed".into(), &err);
    }
}

fn post_error(message: &str) {
    let reply = Object::new();
    set(&reply, "error", &message.into());
    post_from_helper(&reply, &Array::new());
}

/// Starts a helper: answers each share it is sent with its gradients and loss.
#[wasm_bindgen(js_name = startHelper)]
pub fn start_helper() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&info.to_string().into());
        post_error(&format!("internal error in a training helper: {info}"));
    }));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        spawn_local(async move {
            let answer = match read_job(&event.data()) {
                Ok(job) => {
                    // Taken out for the job (one at a time), so no borrow is held across an await.
                    let mut worker = SHARE_WORKER.take();
                    let answer = worker.gradients(job).await.map_err(|err| err.to_string());
                    SHARE_WORKER.set(worker);
                    answer
                }
                Err(why) => Err(format!("unreadable share: {why}")),
            };
            match answer {
                Ok(share) => {
                    let reply = Object::new();
                    let gradients = Float32Array::from(&share.gradients[..]);
                    set(&reply, "gradients", &gradients);
                    set(&reply, "loss", &share.loss.into());
                    post_from_helper(&reply, &Array::of1(&gradients.buffer()));
                }
                Err(why) => post_error(&why),
            }
        });
    });
    helper_scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget(); // lives as long as the helper
    let ready = Object::new();
    set(&ready, "ready", &true.into());
    post_from_helper(&ready, &Array::new());
}

fn read_job(data: &JsValue) -> Result<ShareJob<Vec<f32>>, String> {
    let field = |name: &str| Reflect::get(data, &name.into()).map_err(describe);
    let floats = |name: &str| -> Result<Vec<f32>, String> {
        Ok(field(name)?
            .dyn_into::<Float32Array>()
            .map_err(|_| format!("{name} is not a Float32Array"))?
            .to_vec())
    };
    let number = |name: &str| -> Result<f32, String> {
        Ok(field(name)?
            .as_f64()
            .ok_or_else(|| format!("{name} is not a number"))? as f32)
    };
    let shape: ImageShape =
        serde_wasm_bindgen::from_value(field("shape")?).map_err(|err| err.to_string())?;
    let batch = HostBatch::from_parts(shape, floats("pixels")?, floats("dissimilar")?)?;
    Ok(ShareJob {
        parameters: floats("parameters")?,
        batch,
        margin: number("margin")?,
        scale: number("scale")?,
    })
}
