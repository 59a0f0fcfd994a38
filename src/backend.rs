//! Which Burn device the job runs on: the flex CPU backend, WebGPU (Vulkan or Metal natively)
//! through wgpu, or natively a GPU pinned to CUDA, Vulkan or Metal.

#[cfg(feature = "wgpu")]
use std::sync::OnceLock;

use burn::tensor::Device;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Burn's CPU backend (SIMD, single thread in the browser).
    Flex,
    /// The GPU through wgpu: WebGPU in a browser, natively whatever graphics API wgpu picks.
    Wgpu,
    /// Natively, with the features of the same names (the toolkits are needed at run time only:
    /// the Vulkan loader, or for CUDA the driver, NVRTC and the toolkit's headers).
    Vulkan,
    Metal,
    /// The CUDA device of this index.
    Cuda(usize),
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Flex => write!(f, "flex"),
            Backend::Wgpu => write!(f, "wgpu"),
            Backend::Vulkan => write!(f, "vulkan"),
            Backend::Metal => write!(f, "metal"),
            Backend::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "flex" | "cpu" => Ok(Backend::Flex),
            "wgpu" | "webgpu" | "gpu" => Ok(Backend::Wgpu),
            "vulkan" => Ok(Backend::Vulkan),
            "metal" => Ok(Backend::Metal),
            "cuda" => Ok(Backend::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(index)) => Ok(Backend::Cuda(index)),
                _ => Err(format!(
                    "unknown device {other:?}: use cpu, wgpu, vulkan, metal, cuda or cuda:N"
                )),
            },
        }
    }
}

/// The device to train on, with autodiff. wgpu is set up asynchronously, as browsers require,
/// and the error says why when no adapter is available, or when this build lacks the backend.
pub async fn training_device(backend: Backend) -> Result<Device, String> {
    let device = match backend {
        Backend::Flex => Device::flex(),
        Backend::Wgpu => wgpu_device().await?,
        Backend::Vulkan | Backend::Metal | Backend::Cuda(_) => native_gpu(backend)?,
    };
    Ok(device.autodiff())
}

/// The wgpu runtime can be initialised once per process (or page); later runs reuse it.
#[cfg(feature = "wgpu")]
static WGPU_DEVICE: OnceLock<Device> = OnceLock::new();

#[cfg(feature = "wgpu")]
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

/// Without the `wgpu` feature: native builds (it is most of their build time, and the native tests
/// run on the CPU) and the browser's CPU module, which readers without a real GPU download.
#[cfg(not(feature = "wgpu"))]
async fn wgpu_device() -> Result<Device, String> {
    Err(if cfg!(target_arch = "wasm32") {
        "this is the CPU-only module, without WebGPU: the page loads the full one to train on WebGPU"
    } else {
        "this build has no GPU backend: build it with `--features wgpu`"
    }
    .into())
}

/// A GPU pinned to one API. Burn's constructors are lazy and a first use of a missing device
/// panics, so the devices the API finds are listed first and a missing one is an error.
fn native_gpu(backend: Backend) -> Result<Device, String> {
    #[allow(unused_imports)] // the names each feature uses
    use burn::tensor::{DeviceKind, DeviceType};
    let missing = |feature: &str| {
        Err(format!(
            "this build has no {backend} backend: build it with `--features {feature}`"
        ))
    };
    #[allow(unreachable_patterns)] // the arms below the features' own, when they are on
    match backend {
        #[cfg(all(feature = "cuda", not(target_arch = "wasm32")))]
        Backend::Cuda(index) => listed(backend, index, DeviceType::Cuda, || Device::cuda(index)),
        #[cfg(all(feature = "vulkan", not(target_arch = "wasm32")))]
        Backend::Vulkan => listed(backend, 0, DeviceType::Vulkan, || {
            Device::vulkan(DeviceKind::DefaultDevice)
        }),
        #[cfg(all(feature = "metal", not(target_arch = "wasm32")))]
        Backend::Metal => listed(backend, 0, DeviceType::Metal, || {
            Device::metal(DeviceKind::DefaultDevice)
        }),
        Backend::Cuda(_) => missing("cuda"),
        Backend::Vulkan => missing("vulkan"),
        Backend::Metal => missing("metal"),
        Backend::Flex | Backend::Wgpu => unreachable!("not a pinned GPU"),
    }
}

/// The device `make` builds, when `kind` lists more than `index` devices.
#[cfg(all(
    any(feature = "cuda", feature = "vulkan", feature = "metal"),
    not(target_arch = "wasm32")
))]
fn listed(
    backend: Backend,
    index: usize,
    kind: burn::tensor::DeviceType,
    make: impl FnOnce() -> Device,
) -> Result<Device, String> {
    let found = Device::enumerate(kind).len();
    if index >= found {
        return Err(format!(
            "there is no {backend} device: {found} found (is the driver installed?)"
        ));
    }
    Ok(make())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_as_the_command_line_writes_them() {
        for (name, backend) in [
            ("cpu", Backend::Flex),
            ("wgpu", Backend::Wgpu),
            ("vulkan", Backend::Vulkan),
            ("cuda", Backend::Cuda(0)),
            ("cuda:3", Backend::Cuda(3)),
        ] {
            assert_eq!(name.parse::<Backend>(), Ok(backend));
        }
        assert_eq!(Backend::Cuda(3).to_string(), "cuda:3");
        assert!("cuda:x".parse::<Backend>().unwrap_err().contains("cuda:N"));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_backend_this_build_lacks_says_which_feature_brings_it() {
        let err = pollster::block_on(training_device(Backend::Cuda(1))).unwrap_err();
        assert_eq!(
            err,
            "this build has no cuda:1 backend: build it with `--features cuda`"
        );
    }
}
