//! Which Burn device the job runs on: WebGPU/Vulkan/Metal through wgpu, or the flex CPU backend.

#[cfg(any(target_arch = "wasm32", feature = "wgpu"))]
use std::sync::OnceLock;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Burn's CPU backend (SIMD, single thread in the browser).
    Flex,
    /// The GPU through wgpu: WebGPU in a browser, Vulkan or Metal natively.
    Wgpu,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Wgpu => "wgpu",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "flex" | "cpu" => Ok(Backend::Flex),
            "wgpu" | "webgpu" | "gpu" => Ok(Backend::Wgpu),
            other => Err(format!(
                "unknown backend {other:?}: use flex (CPU) or wgpu (GPU)"
            )),
        }
    }
}

/// The device to train on, with autodiff. wgpu is set up asynchronously, as browsers require,
/// and the error says why when no adapter is available.
pub async fn training_device(backend: Backend) -> Result<Device, String> {
    let device = match backend {
        Backend::Flex => Device::flex(),
        Backend::Wgpu => wgpu_device().await?,
    };
    Ok(device.autodiff())
}

/// The wgpu runtime can be initialised once per process (or page); later runs reuse it.
#[cfg(any(target_arch = "wasm32", feature = "wgpu"))]
static WGPU_DEVICE: OnceLock<Device> = OnceLock::new();

#[cfg(any(target_arch = "wasm32", feature = "wgpu"))]
async fn wgpu_device() -> Result<Device, String> {
    if let Some(device) = WGPU_DEVICE.get() {
        return Ok(device.clone());
    }
    let device = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|err| format!("no usable GPU through wgpu: {err}"))?;
    Ok(WGPU_DEVICE.get_or_init(|| device).clone())
}

/// Native builds have wgpu only with the `wgpu` feature: it is most of their build time, and the
/// native tests run on the CPU.
#[cfg(not(any(target_arch = "wasm32", feature = "wgpu")))]
async fn wgpu_device() -> Result<Device, String> {
    Err("this build has no GPU backend: build it with `--features wgpu`".into())
}
