//! The GPU device: adapter selection, limits, how the device's work is shaped ([`Tuning`]),
//! error capture and read-back.
//!
//! Everything here is async and never blocks a thread, so the same code drives the browser's
//! WebGPU (where `device.poll` returns at once and mapping completes on the event loop) and
//! native Vulkan/Metal/DX12 (where `poll` waits for the queue).

use crate::error::EngineError;
use crate::profile::{KernelTime, PendingProfile, ProfileState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Some drivers (SwiftShader in Chromium) refuse a buffer of exactly the 1 GiB they
/// advertise; staying a MiB below costs nothing.
const LARGEST_BUFFER: u64 = (1 << 30) - (1 << 20);

/// What executes the kernels, which decides their shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdapterKind {
    /// A GPU: groups of `matvec_lanes` lanes share each group of four rows in the decode
    /// matrix × vector (matvec_gpu.wgsl), prefill multiplies tiles, attention is tiled, and
    /// small steps are fused into the kernels after them.
    Gpu { matvec_lanes: u32 },
    /// A CPU emulating a GPU (lavapipe, SwiftShader): a thread per group of rows, activations
    /// read through uniform windows, no barriers where they can be avoided (each is a loop
    /// split there), and one step at a time (the "device" shares the host's cores).
    CpuEmulated,
}

impl AdapterKind {
    /// Lanes per group of rows when a GPU's are not chosen: 16 lanes take a Phi-4-mini row
    /// (3072 values) in three 64-value steps of Q4_K.
    pub const DEFAULT_MATVEC_LANES: u32 = 16;

    pub fn is_gpu(self) -> bool {
        matches!(self, AdapterKind::Gpu { .. })
    }
}

/// `cpu`, `gpu`, or `gpu:LANES` (the `HEARTH_KERNELS` setting of the CLI and benchmarks).
impl std::str::FromStr for AdapterKind {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, EngineError> {
        let lanes = match s.split_once(':') {
            None if s == "cpu" => return Ok(AdapterKind::CpuEmulated),
            None if s == "gpu" => Some(AdapterKind::DEFAULT_MATVEC_LANES),
            Some(("gpu", lanes)) => lanes.parse().ok(),
            _ => None,
        };
        lanes
            .map(|matvec_lanes| AdapterKind::Gpu { matvec_lanes })
            .ok_or_else(|| {
                EngineError::Unsupported(format!(
                    "kernels '{s}': the choices are cpu, gpu and gpu:LANES"
                ))
            })
    }
}

/// How the KV caches hold keys and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvFormat {
    F32,
    /// f16 values read and written as f16 (the device has shader-f16).
    F16,
    /// f16 values packed two to a u32 (pack2x16float, the same bytes as F16): half of f32's
    /// memory and of attention's reads on devices without shader-f16.
    PackedF16,
}

impl KvFormat {
    /// Bytes of one cached key or value.
    pub fn value_bytes(self) -> usize {
        match self {
            KvFormat::F32 => 4,
            KvFormat::F16 | KvFormat::PackedF16 => 2,
        }
    }
}

/// How this device's work is shaped: decided once when the device opens, from what the
/// adapter reports, and adjustable before a model loads (tests, benchmarks, a page that knows
/// its "GPU" is SwiftShader). A model's kernels keep the tuning they were compiled with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    pub adapter: AdapterKind,
    /// Whether GPU kernels take over small steps: RMSNorm inside the matrix products after it
    /// (which read x and the norm's weights a second time, from cache), a decoded token's RoPE
    /// and cache store inside attention. Each saves a dependent dispatch of little work.
    /// CPU-emulated adapters, where a dispatch costs little, never fuse these.
    pub fusion: bool,
    /// Whether greedy decoding queues each step before the token it feeds is read back, so
    /// the host's read-back and its recording of the next step overlap the device's work.
    pub queue_ahead: bool,
    pub kv_format: KvFormat,
}

impl Tuning {
    /// The defaults for an adapter of `kind`: queue ahead on GPUs only (on a CPU adapter the
    /// overlap competes with the device for the same cores).
    fn for_adapter(kind: AdapterKind, kv_format: KvFormat) -> Self {
        Tuning {
            adapter: kind,
            fusion: true,
            queue_ahead: kind.is_gpu(),
            kv_format,
        }
    }

    /// Whether the kernels fuse small steps (`fusion` on a GPU).
    pub fn fuses(&self) -> bool {
        self.fusion && self.adapter.is_gpu()
    }
}

/// GPU memory held by the buffers Hearth made on a device: now, and at most since the peak was
/// last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuMemory {
    pub live: u64,
    pub peak: u64,
}

/// Counts the bytes of every live `GpuBuffer` of a device.
#[derive(Default, Debug)]
struct MemoryMeter {
    live: AtomicU64,
    peak: AtomicU64,
}

impl MemoryMeter {
    fn add(&self, bytes: u64) {
        let live = self.live.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(live, Ordering::Relaxed);
    }

    fn remove(&self, bytes: u64) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// A buffer Hearth made, counted in `Gpu::memory` while it lives. Every buffer goes through
/// `Gpu`, so the count is what Hearth holds on the device (the driver's own staging aside).
#[derive(Debug)]
pub struct GpuBuffer {
    buffer: wgpu::Buffer,
    meter: Arc<MemoryMeter>,
}

impl std::ops::Deref for GpuBuffer {
    type Target = wgpu::Buffer;

    fn deref(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        self.meter.remove(self.buffer.size());
    }
}

/// What every storage buffer allows: kernels read and write it, copies reach it both ways.
pub const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

/// The device's verdict on an error scope, still to come.
#[cfg(not(target_arch = "wasm32"))]
pub type ScopeVerdict = std::pin::Pin<Box<dyn Future<Output = Option<wgpu::Error>> + Send>>;
#[cfg(target_arch = "wasm32")]
pub type ScopeVerdict = std::pin::Pin<Box<dyn Future<Output = Option<wgpu::Error>>>>;

/// Whether a buffer made by [`Gpu::buffer_checked_later`] was created.
pub struct BufferCheck {
    label: String,
    bytes: u64,
    /// The buffer's size as created (rounded up), as the memory count holds it.
    size: u64,
    validation: ScopeVerdict,
    out_of_memory: ScopeVerdict,
}

impl BufferCheck {
    /// Waits for the verdict.
    pub async fn wait(mut self, gpu: &Gpu) -> Result<(), EngineError> {
        let validation = (&mut self.validation).await;
        let out_of_memory = (&mut self.out_of_memory).await;
        self.verdict(gpu, validation, out_of_memory)
    }

    /// The verdict if it has arrived, without waiting.
    pub fn poll_now(&mut self, gpu: &Gpu) -> Option<Result<(), EngineError>> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(validation) = self.validation.as_mut().poll(&mut cx) else {
            return None;
        };
        // Scopes settle in order: the outer one is ready once the inner one is.
        let std::task::Poll::Ready(out_of_memory) = self.out_of_memory.as_mut().poll(&mut cx)
        else {
            // Not yet: keep the inner verdict by waiting for the outer next time.
            self.validation = Box::pin(std::future::ready(validation));
            return None;
        };
        Some(self.verdict(gpu, validation, out_of_memory))
    }

    fn verdict(
        &self,
        gpu: &Gpu,
        validation: Option<wgpu::Error>,
        out_of_memory: Option<wgpu::Error>,
    ) -> Result<(), EngineError> {
        let label = &self.label;
        if let Some(e) = validation {
            return Err(EngineError::Gpu(format!(
                "creating {label} ({} bytes): {e}",
                self.bytes
            )));
        }
        if let Some(e) = out_of_memory {
            // What was held besides this buffer, which is still counted.
            let held = gpu.memory().live.saturating_sub(self.size) >> 20;
            return Err(EngineError::OutOfMemory(format!(
                "allocating {label} ({} MiB, with {held} MiB held already): {e}",
                self.bytes >> 20
            )));
        }
        Ok(())
    }
}

/// An opened GPU device with the limits Hearth plans around.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    tuning: Tuning,
    /// The first error the device reported outside an error scope, or its loss.
    fault: Arc<Mutex<Option<String>>>,
    /// A smaller binding limit than the device's, to exercise tensor splitting in tests.
    binding_limit: Option<u64>,
    /// Per-kernel timing, while profiling is on (see `profile.rs`).
    profile: Mutex<Option<ProfileState>>,
    memory: Arc<MemoryMeter>,
}

impl Gpu {
    /// Opens the best adapter with all of its limits (large buffers matter for LLM weights).
    pub async fn new() -> Result<Self, EngineError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        let adapter = instance
            .request_adapter(&options)
            .await
            .map_err(|e| EngineError::NoAdapter(e.to_string()))?;
        Self::from_adapter(adapter).await
    }

    pub async fn from_adapter(adapter: wgpu::Adapter) -> Result<Self, EngineError> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        // Timestamps cost nothing until a pass asks for them; they let `--profile` time kernels.
        // shader-f16 halves the KV cache (its memory and attention's reads at long context).
        let features =
            adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("hearth"),
                required_features: features,
                required_limits: limits.clone(),
                memory_hints: wgpu::MemoryHints::Performance,
                ..Default::default()
            })
            .await
            .map_err(|e| EngineError::RequestDevice(e.to_string()))?;
        let fault = Arc::new(Mutex::new(None));
        // wgpu's default handler panics; record the error and report it from the next call.
        let sink = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        let sink = fault.clone();
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| format!("device lost ({reason:?}): {message}"));
        });
        let cpu = info.device_type == wgpu::DeviceType::Cpu;
        let kind = if cpu {
            AdapterKind::CpuEmulated
        } else {
            AdapterKind::Gpu {
                matvec_lanes: AdapterKind::DEFAULT_MATVEC_LANES,
            }
        };
        // Without shader-f16, GPUs pack f16 pairs (half the memory and reads for one unpack
        // instruction); CPU adapters keep f32, where unpacking costs more than the reads it
        // saves.
        let kv_format = match (features.contains(wgpu::Features::SHADER_F16), cpu) {
            (true, _) => KvFormat::F16,
            (false, false) => KvFormat::PackedF16,
            (false, true) => KvFormat::F32,
        };
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            tuning: Tuning::for_adapter(kind, kv_format),
            fault,
            binding_limit: None,
            profile: Mutex::new(None),
            memory: Arc::default(),
        })
    }

    /// The largest buffer one shader binding may see; tensors larger than this are split.
    pub fn max_binding_bytes(&self) -> u64 {
        let limit = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
            .min(self.binding_limit.unwrap_or(u64::MAX))
            .min(LARGEST_BUFFER);
        limit & !255
    }

    /// Plans buffers as if the device allowed at most `bytes` per binding (tests of splitting).
    pub fn limit_binding_bytes(&mut self, bytes: u64) {
        self.binding_limit = Some(bytes);
    }

    /// How this device's work is shaped; models loaded afterwards compile their kernels for it.
    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    /// Overrides what the adapter said it is, and the choices that follow from it (queueing
    /// ahead): `CpuEmulated` for adapters that hide being emulated (the browser's SwiftShader
    /// reports no device type through WebGPU), a GPU's lanes per group of rows for tuning,
    /// either kernel set for tests. The KV format stays as the device's features chose it.
    pub fn set_adapter_kind(&mut self, kind: AdapterKind) -> Result<(), EngineError> {
        if let AdapterKind::Gpu { matvec_lanes } = kind
            && !(matvec_lanes.is_power_of_two() && (4..=64).contains(&matvec_lanes))
        {
            return Err(EngineError::Unsupported(format!(
                "{matvec_lanes} lanes per group of matrix rows: the choices are 4, 8, 16, 32 \
                 and 64"
            )));
        }
        self.tuning = Tuning::for_adapter(kind, self.tuning.kv_format);
        Ok(())
    }

    /// Turns the GPU kernels' fusions off (or on; on by default), to compare.
    pub fn set_kernel_fusion(&mut self, on: bool) {
        self.tuning.fusion = on;
    }

    /// Overrides whether greedy decoding queues ahead (on to test the queued path on a CPU
    /// adapter, off to compare on a GPU).
    pub fn set_queue_ahead(&mut self, on: bool) {
        self.tuning.queue_ahead = on;
    }

    /// Chooses how KV caches of models loaded afterwards hold values; false (nothing
    /// changed) for native f16 on a device without shader-f16.
    pub fn set_kv_format(&mut self, format: KvFormat) -> bool {
        if format == KvFormat::F16 && !self.device.features().contains(wgpu::Features::SHADER_F16) {
            return false;
        }
        self.tuning.kv_format = format;
        true
    }

    /// Starts timing every dispatch by kernel (or stops, dropping what was gathered). Fails
    /// where the adapter has no timestamp queries.
    pub fn set_profiling(&self, on: bool) -> Result<(), EngineError> {
        if on
            && !self
                .device
                .features()
                .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return Err(EngineError::Unsupported(format!(
                "{} has no timestamp queries to profile with",
                self.adapter_name()
            )));
        }
        *self.profile.lock().unwrap_or_else(|p| p.into_inner()) = on.then(ProfileState::default);
        Ok(())
    }

    pub(crate) fn is_profiling(&self) -> bool {
        self.profile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    pub(crate) fn add_pending_profile(&self, pending: PendingProfile) {
        if let Some(state) = self
            .profile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            state.pending.push(pending);
        }
    }

    /// Reads back the timestamps of every profiled submission so far and returns the time
    /// per kernel since profiling began, largest first.
    pub async fn take_profile(&self) -> Result<Vec<(String, KernelTime)>, EngineError> {
        let pending = match self
            .profile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            Some(state) => std::mem::take(&mut state.pending),
            None => return Ok(Vec::new()),
        };
        let mut read = Vec::with_capacity(pending.len());
        for p in pending {
            let bytes = self.read_buffer(&p.buffer, p.buffer.size()).await?;
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
            read.push((p.kernels, ticks));
        }
        let period = self.queue.get_timestamp_period();
        let mut slot = self.profile.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = slot.as_mut() else {
            return Ok(Vec::new());
        };
        for (kernels, ticks) in &read {
            state.add(kernels, ticks, period);
        }
        let mut totals: Vec<_> = state.totals.clone().into_iter().collect();
        totals.sort_by(|a: &(String, KernelTime), b| b.1.seconds.total_cmp(&a.1.seconds));
        Ok(totals)
    }

    pub fn adapter_name(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// Fails with the first error the device reported since it was opened.
    pub fn check(&self) -> Result<(), EngineError> {
        let slot = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_deref() {
            None => Ok(()),
            Some(m) if m.contains("lost") => Err(EngineError::DeviceLost(m.to_string())),
            Some(m) if m.to_lowercase().contains("out of memory") => {
                Err(EngineError::OutOfMemory(m.to_string()))
            }
            Some(m) => Err(EngineError::Gpu(m.to_string())),
        }
    }

    /// GPU memory Hearth's buffers hold now, and their peak since `reset_peak_memory`.
    pub fn memory(&self) -> GpuMemory {
        let live = self.memory.live.load(Ordering::Relaxed);
        GpuMemory {
            live,
            peak: self.memory.peak.load(Ordering::Relaxed).max(live),
        }
    }

    /// Starts measuring the peak afresh from what is held now.
    pub fn reset_peak_memory(&self) {
        self.memory
            .peak
            .store(self.memory.live.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Creates a buffer of at least `bytes` (16 at least, a multiple of 16), counted while it
    /// lives, turning allocation failure into an error instead of a panic.
    pub async fn buffer(
        &self,
        label: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<GpuBuffer, EngineError> {
        let (buffer, check) = self.buffer_checked_later(label, bytes, usage);
        check.wait(self).await?;
        Ok(buffer)
    }

    /// `buffer` without waiting for the device's verdict: `check` reports a failure later.
    /// In the browser each wait is a round trip behind everything the GPU process has queued
    /// (pipelines compiling, earlier writes), so a load checks its buffers as verdicts arrive.
    pub fn buffer_checked_later(
        &self,
        label: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> (GpuBuffer, BufferCheck) {
        let out_of_memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(16),
            usage,
            mapped_at_creation: false,
        });
        let validation = Box::pin(validation.pop());
        let out_of_memory = Box::pin(out_of_memory.pop());
        self.memory.add(buffer.size());
        let check = BufferCheck {
            label: label.to_string(),
            bytes,
            size: buffer.size(),
            validation,
            out_of_memory,
        };
        let buffer = GpuBuffer {
            buffer,
            meter: self.memory.clone(),
        };
        (buffer, check)
    }

    /// `buffer` without waiting on error scopes, for buffers made while recording a submission
    /// (small uniform and query buffers): a failure surfaces from `check`.
    pub fn buffer_now(&self, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> GpuBuffer {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(16),
            usage,
            mapped_at_creation: false,
        });
        self.memory.add(buffer.size());
        GpuBuffer {
            buffer,
            meter: self.memory.clone(),
        }
    }

    /// A storage buffer the kernels read and write (and copies reach), plus `extra` usages.
    pub async fn storage_buffer(
        &self,
        label: &str,
        bytes: u64,
        extra: wgpu::BufferUsages,
    ) -> Result<GpuBuffer, EngineError> {
        self.buffer(label, bytes, STORAGE_USAGE | extra).await
    }

    /// A buffer the host maps to read what the GPU copied into it.
    pub async fn readback_buffer(&self, label: &str, bytes: u64) -> Result<GpuBuffer, EngineError> {
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        self.buffer(label, bytes, usage).await
    }

    /// Copies the first `bytes` bytes of a storage buffer back to the host (tests, debugging).
    pub async fn read_storage(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<u8>, EngineError> {
        let staging = self.readback_buffer("read_storage", bytes).await?;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes.next_multiple_of(4));
        self.queue.submit([encoder.finish()]);
        let mut data = self
            .read_buffer(&staging, bytes.next_multiple_of(4))
            .await?;
        data.truncate(bytes as usize);
        Ok(data)
    }

    /// Waits until the GPU has finished the work submitted so far.
    pub async fn work_done(&self) -> Result<(), EngineError> {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        rx.await
            .map_err(|_| EngineError::Readback("the GPU dropped the request".into()))?;
        self.check()
    }

    /// Reads `bytes` bytes of a MAP_READ buffer after the queue has finished with it.
    pub async fn read_buffer(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<u8>, EngineError> {
        let slice = buffer.slice(..bytes);
        let (tx, rx) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        // Native: wait for the queue. Web: returns at once; the browser completes the map.
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        let mapped = rx
            .await
            .map_err(|_| EngineError::Readback("the GPU dropped the request".into()))?;
        self.check()?;
        mapped.map_err(|e| EngineError::Readback(e.to_string()))?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| EngineError::Readback(e.to_string()))?
            .to_vec();
        buffer.unmap();
        Ok(data)
    }
}
