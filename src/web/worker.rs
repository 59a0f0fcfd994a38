//! The browser edge of the session: decodes the page's messages, hands each to the
//! [`Session`], and posts its replies, tagged with the request's id. What only a browser has is
//! here too: fetching the digits, yielding to the event loop, wasm's memory. `www/worker.js`
//! probes WebGPU, loads this module (the full one or the CPU-only one) in a dedicated Web
//! Worker and calls [`start_worker`], so the page never freezes.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{DedicatedWorkerGlobalScope, MessageChannel, MessageEvent, Response};

use crate::session::messages::{Envelope, Reply, Request, WebGpuSupport};
use crate::session::{Host, Session};
use crate::training::TrainConfig;
use crate::training::shares::BatchHelpers;
use crate::web::helpers::WorkerHelpers;

/// The id of replies that answer no request: `ready`, and a panic.
const NO_REQUEST: u64 = 0;

thread_local! {
    static SESSION: Rc<Session> = Rc::new(Session::new());
    /// The script a training helper starts from (`www/helper.js`), as `worker.js` resolved it.
    static HELPER_SCRIPT: RefCell<String> = const { RefCell::new(String::new()) };
    /// The worker's messages to itself, to yield to its event loop.
    static YIELD_CHANNEL: MessageChannel = MessageChannel::new().expect("a MessageChannel");
    /// What `worker.js` found, before it picked this module.
    static WEBGPU: RefCell<WebGpuSupport> = RefCell::new(WebGpuSupport::Missing {
        reason: "the worker has not started".into(),
    });
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(id: u64, reply: &Reply) {
    let serializer = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
    match serde::Serialize::serialize(&Envelope { id, reply }, &serializer) {
        Ok(value) => {
            if let Err(err) = scope().post_message(&value) {
                web_sys::console::error_2(&"siamese-web: postMessage failed".into(), &err);
            }
        }
        Err(err) => web_sys::console::error_1(&format!("siamese-web: {err}").into()),
    }
}

/// Starts the worker: reports panics to the page, listens for messages, says it is ready.
/// `helper_script` is where training helpers start from; `webgpu` is what the worker's script
/// found (a `WebGpuSupport`).
#[wasm_bindgen(js_name = startWorker)]
pub fn start_worker(helper_script: String, webgpu: JsValue) {
    HELPER_SCRIPT.set(helper_script);
    WEBGPU.set(
        serde_wasm_bindgen::from_value(webgpu).unwrap_or_else(|err| WebGpuSupport::Missing {
            reason: format!("the worker's WebGPU probe was not understood: {err}"),
        }),
    );
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&info.to_string().into());
        post(
            NO_REQUEST,
            &Reply::Error {
                message: format!("internal error, the worker must restart: {info}"),
                fatal: true,
            },
        );
    }));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        let data = event.data();
        match serde_wasm_bindgen::from_value::<Request>(data.clone()) {
            Ok(Request { id, command }) => spawn_local(async move {
                let session = SESSION.with(Rc::clone);
                session.handle(command, &mut WorkerHost { id }).await;
            }),
            Err(err) => {
                // Answer the request it claims to be, if it says which.
                let id = Reflect::get(&data, &"id".into())
                    .ok()
                    .and_then(|id| id.as_f64())
                    .map_or(NO_REQUEST, |id| id as u64);
                post(
                    id,
                    &Reply::error(format!("unreadable message from the page: {err}")),
                );
            }
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget(); // lives as long as the worker
    let ready = Reply::Ready {
        webgpu: WEBGPU.with_borrow(Clone::clone),
        webgpu_module: cfg!(feature = "wgpu"),
        defaults: TrainConfig::new(),
    };
    post(NO_REQUEST, &ready);
}

/// The session's view of the worker, for one request.
struct WorkerHost {
    id: u64,
}

impl Host for WorkerHost {
    fn send(&mut self, reply: Reply) {
        post(self.id, &reply);
    }

    async fn fetch(&mut self, url: &str) -> Result<Vec<u8>, String> {
        let failed = |err: JsValue| format!("{err:?}");
        let response: Response = JsFuture::from(scope().fetch_with_str(url))
            .await
            .map_err(failed)?
            .unchecked_into();
        if !response.ok() {
            return Err(format!("HTTP {}", response.status()));
        }
        let buffer = JsFuture::from(response.array_buffer().map_err(failed)?)
            .await
            .map_err(failed)?;
        Ok(Uint8Array::new(&buffer).to_vec())
    }

    async fn webgpu(&mut self) -> WebGpuSupport {
        WEBGPU.with_borrow(Clone::clone)
    }

    /// Lets the worker handle queued messages (a Stop) before going on. Through a message to
    /// itself, not a timer: a timer set from a timer's task is held back 4 ms after a few
    /// levels, every step (PERFORMANCE.md).
    async fn yield_now(&mut self) {
        let promise = Promise::new(&mut |resolve, _| {
            YIELD_CHANNEL.with(|channel| {
                channel.port1().set_onmessage(Some(&resolve));
                let _ = channel.port2().post_message(&JsValue::NULL);
            });
        });
        let _ = JsFuture::from(promise).await;
    }

    async fn helpers(&mut self, count: usize) -> impl BatchHelpers + 'static {
        WorkerHelpers::start(count, &HELPER_SCRIPT.with_borrow(Clone::clone)).await
    }

    fn memory_bytes(&self) -> f64 {
        let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
        memory
            .buffer()
            .unchecked_into::<js_sys::ArrayBuffer>()
            .byte_length() as f64
    }
}
