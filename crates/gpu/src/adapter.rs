//! Adapter choice: a real GPU first, else whatever the platform offers (lavapipe, llvmpipe);
//! `KILN_BACKEND` and `KILN_ADAPTER` override it.

use kiln_core::{Error, Result};
use wgpu::{Adapter, AdapterInfo, Backends, DeviceType, Instance};

/// What the environment asks for: a backend set and a substring of the adapter's name.
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    pub backend: Option<String>,
    pub name: Option<String>,
    /// Which of several equally good adapters (a machine's GPUs, in enumeration order) to take,
    /// counted round: a data-parallel rank's local rank.
    pub ordinal: Option<usize>,
}

impl AdapterChoice {
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        AdapterChoice { backend: var("KILN_BACKEND"), name: var("KILN_ADAPTER"), ordinal: None }
    }

    fn backends(&self) -> Result<Backends> {
        let Some(name) = &self.backend else { return Ok(Backends::all()) };
        match name.to_ascii_lowercase().as_str() {
            "vulkan" => Ok(Backends::VULKAN),
            "metal" => Ok(Backends::METAL),
            "dx12" => Ok(Backends::DX12),
            "gl" | "gles" | "opengl" => Ok(Backends::GL),
            other => Err(Error::Unsupported(format!("KILN_BACKEND={other}: expected vulkan, metal, dx12 or gl"))),
        }
    }

    /// Enumerates every adapter and picks the best one the environment allows: an error lists
    /// what was asked and what exists, and suggests installing a driver only where none exists.
    pub async fn pick(&self) -> Result<(Instance, Adapter)> {
        let backends = self.backends()?;
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        descriptor.backends = Backends::all();
        let instance = Instance::new(descriptor);
        let adapters = instance.enumerate_adapters(Backends::all()).await;
        if adapters.is_empty() {
            return Err(Error::NoAdapter { detail: String::new() });
        }
        let seen: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
        let wanted = |a: &Adapter| {
            let info = a.get_info();
            backends.contains(Backends::from(info.backend))
                && self.name.as_ref().is_none_or(|n| info.name.to_lowercase().contains(&n.to_lowercase()))
        };
        let candidates: Vec<Adapter> = adapters.into_iter().filter(wanted).collect();
        let best_rank = candidates.iter().map(|a| rank(a.get_info().device_type)).min();
        let mut best: Vec<Adapter> =
            candidates.into_iter().filter(|a| Some(rank(a.get_info().device_type)) == best_rank).collect();
        let pick = self.ordinal.unwrap_or(0) % best.len().max(1);
        let best = (pick < best.len()).then(|| best.swap_remove(pick));
        let adapter = best.ok_or_else(|| Error::NoMatchingAdapter {
            asked: self.asked(),
            present: seen.join("; "),
            advice: "Name one of them (KILN_BACKEND=vulkan|metal|dx12|gl, KILN_ADAPTER=part of its name) or unset \
                     the variable to let Kiln choose."
                .into(),
        })?;
        log::info!("kiln: using adapter {}", describe(&adapter.get_info()));
        Ok((instance, adapter))
    }

    /// The environment's filters, as the user wrote them.
    fn asked(&self) -> String {
        let filters: Vec<String> = [("KILN_BACKEND", &self.backend), ("KILN_ADAPTER", &self.name)]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        filters.join(" and ")
    }
}

/// Real GPUs before software ones.
fn rank(kind: DeviceType) -> u8 {
    match kind {
        DeviceType::DiscreteGpu => 0,
        DeviceType::IntegratedGpu => 1,
        DeviceType::VirtualGpu => 2,
        DeviceType::Other => 3,
        DeviceType::Cpu => 4,
    }
}

/// `name (backend, type, driver)` for logs and reports. Browsers may leave the name and the
/// driver empty (their privacy rules): those parts are then said to be unknown or left out.
pub fn describe(info: &AdapterInfo) -> String {
    let name = if info.name.is_empty() { "an adapter of unknown name" } else { &info.name };
    let driver = format!("{} {}", info.driver, info.driver_info);
    match driver.trim() {
        "" => format!("{name} ({:?}, {:?})", info.backend, info.device_type),
        driver => format!("{name} ({:?}, {:?}, {driver})", info.backend, info.device_type),
    }
}
