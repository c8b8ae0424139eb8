//! The GPU device: adapter selection, limits, error capture and read-back.
//!
//! Everything here is async and never blocks a thread, so the same code drives the browser's
//! WebGPU (where `device.poll` returns at once and mapping completes on the event loop) and
//! native Vulkan/Metal/DX12 (where `poll` waits for the queue).

use crate::EngineError;
use crate::profile::{KernelTime, PendingProfile, ProfileState};
use std::sync::{Arc, Mutex};

/// Lanes that share a group of four rows in the GPU decode matvec (matvec_gpu.wgsl): 16 lanes
/// take a Phi-4-mini row (3072 values) in three 64-value steps of Q4_K.
const GPU_MATVEC_THREADS: u32 = 16;

/// Some drivers (SwiftShader in Chromium) refuse a buffer of exactly the 1 GiB they
/// advertise; staying a MiB below costs nothing.
const LARGEST_BUFFER: u64 = (1 << 30) - (1 << 20);

/// An opened GPU device with the limits Hearth plans around.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// The first error the device reported outside an error scope, or its loss.
    fault: Arc<Mutex<Option<String>>>,
    /// A smaller binding limit than the device's, to exercise tensor splitting in tests.
    binding_limit: Option<u64>,
    /// Threads that share a row (or a GPU's group of rows) in the decode matvec: 1 selects
    /// the CPU-adapter kernels (see shaders/matvec_cpu.wgsl and matvec_gpu.wgsl).
    matvec_threads_per_row: u32,
    /// Whether the GPU kernels fuse RMSNorm and a decoded token's RoPE into the kernels after
    /// them (see `set_kernel_fusion`).
    kernel_fusion: bool,
    /// Whether greedy decoding queues each step before reading back the token it feeds (see
    /// `queue_ahead`).
    queue_ahead: bool,
    /// How KV caches hold their values.
    kv_cache: KvCache,
    /// Per-kernel timing, while profiling is on (see `profile.rs`).
    profile: Mutex<Option<ProfileState>>,
}

/// How the KV caches hold keys and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvCache {
    F32,
    /// f16 values read and written as f16 (the device has shader-f16).
    F16,
    /// f16 values packed two to a u32 (pack2x16float, the same bytes as F16): half of f32's
    /// memory and of attention's reads on devices without shader-f16 (SwiftShader).
    PackedF16,
}

impl KvCache {
    /// Bytes of one cached key or value.
    pub fn value_bytes(self) -> usize {
        match self {
            KvCache::F32 => 4,
            KvCache::F16 | KvCache::PackedF16 => 2,
        }
    }
}

impl Gpu {
    /// Opens the best adapter with all of its limits (large buffers matter for LLM weights).
    pub async fn new() -> Result<Self, EngineError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
            .await
            .map_err(|e| EngineError::NoAdapter(e.to_string()))?;
        Self::from_adapter(adapter).await
    }

    pub async fn from_adapter(adapter: wgpu::Adapter) -> Result<Self, EngineError> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        // Timestamps cost nothing until a pass asks for them; they let `--profile` time kernels.
        // shader-f16 halves the KV cache (its memory and attention's reads at long context).
        let features = adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16);
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
        // Without shader-f16, GPUs pack f16 pairs (half the memory and reads for one unpack
        // instruction); CPU adapters keep f32, where unpacking costs more than the reads it
        // saves (SwiftShader: SmolLM2 decode at context 1024 7% slower packed).
        let kv_cache = match (features.contains(wgpu::Features::SHADER_F16), cpu) {
            (true, _) => KvCache::F16,
            (false, false) => KvCache::PackedF16,
            (false, true) => KvCache::F32,
        };
        Ok(Gpu { device, queue, info, limits, fault, binding_limit: None, matvec_threads_per_row: if cpu { 1 } else { GPU_MATVEC_THREADS }, kernel_fusion: true, queue_ahead: !cpu, kv_cache, profile: Mutex::new(None) })
    }

    /// The largest buffer one shader binding may see; tensors larger than this are split.
    pub fn max_binding_bytes(&self) -> u64 {
        let binding = self.limits.max_storage_buffer_binding_size;
        let limit = binding.min(self.limits.max_buffer_size).min(self.binding_limit.unwrap_or(u64::MAX)).min(LARGEST_BUFFER);
        limit & !255
    }

    /// Plans buffers as if the device allowed at most `bytes` per binding (tests of splitting).
    pub fn limit_binding_bytes(&mut self, bytes: u64) {
        self.binding_limit = Some(bytes);
    }

    /// Threads per row of the decode matvec: many on GPUs, one where the "GPU" is the CPU.
    pub fn matvec_threads_per_row(&self) -> u32 {
        self.matvec_threads_per_row
    }

    /// Overrides the choice above: 1 for adapters that hide being CPU-emulated (the browser's
    /// SwiftShader reports no device type through WebGPU), a GPU's lanes per group of rows
    /// for tuning, every variant for tests. Takes effect for kernels compiled afterwards.
    pub fn set_matvec_threads_per_row(&mut self, threads: u32) -> Result<(), EngineError> {
        if threads != 1 && !(threads.is_power_of_two() && (4..=64).contains(&threads)) {
            return Err(EngineError::Unsupported(format!("{threads} threads per matrix row: the choices are 1 (CPU adapters) and 4, 8, 16, 32 or 64 (GPUs)")));
        }
        self.matvec_threads_per_row = threads;
        Ok(())
    }

    /// Whether the GPU kernels fuse small steps into the kernels after them.
    pub fn kernel_fusion(&self) -> bool {
        self.kernel_fusion
    }

    /// Turns off (or on) the GPU kernels' fusions, on by default: RMSNorm into the matrix
    /// products after it (which read x and the norm's weights a second time, from cache), and
    /// a decoded token's RoPE and cache store into attention. Each saves a dependent dispatch
    /// of little work: three per layer when decoding. A switch for side-by-side measurement;
    /// CPU adapters' kernels never fuse these. Takes effect for kernels compiled afterwards.
    pub fn set_kernel_fusion(&mut self, on: bool) {
        self.kernel_fusion = on;
    }

    /// Whether greedy decoding queues each step before the token it feeds is read back
    /// (`Session::submit_greedy_after`): on a GPU the host's read-back and its recording of
    /// the next step then overlap the device's work. Off on CPU adapters, where they would
    /// compete with it for the same cores (lavapipe, SmolLM2 decode: 0.82x as fast queued
    /// ahead, medians of three alternating runs).
    pub fn queue_ahead(&self) -> bool {
        self.queue_ahead
    }

    /// Overrides the choice above (off for the browser's SwiftShader, on to test the queued
    /// path on a CPU adapter, or to compare).
    pub fn set_queue_ahead(&mut self, on: bool) {
        self.queue_ahead = on;
    }

    /// Starts timing every dispatch by kernel (or stops, dropping what was gathered). Fails
    /// where the adapter has no timestamp queries.
    pub fn set_profiling(&self, on: bool) -> Result<(), EngineError> {
        if on && !self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Err(EngineError::Unsupported(format!("{} has no timestamp queries to profile with", self.adapter_name())));
        }
        *self.profile.lock().unwrap_or_else(|p| p.into_inner()) = on.then(ProfileState::default);
        Ok(())
    }

    pub(crate) fn is_profiling(&self) -> bool {
        self.profile.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    pub(crate) fn add_pending_profile(&self, pending: PendingProfile) {
        if let Some(state) = self.profile.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            state.pending.push(pending);
        }
    }

    /// Reads back the timestamps of every profiled submission so far and returns the time
    /// per kernel since profiling began, largest first.
    pub async fn take_profile(&self) -> Result<Vec<(String, KernelTime)>, EngineError> {
        let pending = match self.profile.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            Some(state) => std::mem::take(&mut state.pending),
            None => return Ok(Vec::new()),
        };
        let mut read = Vec::with_capacity(pending.len());
        for p in pending {
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&self.read_buffer(&p.buffer, p.buffer.size()).await?);
            read.push((p.kernels, ticks));
        }
        let period = self.queue.get_timestamp_period();
        let mut slot = self.profile.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = slot.as_mut() else { return Ok(Vec::new()) };
        for (kernels, ticks) in &read {
            state.add(kernels, ticks, period);
        }
        let mut totals: Vec<_> = state.totals.clone().into_iter().collect();
        totals.sort_by(|a: &(String, KernelTime), b| b.1.seconds.total_cmp(&a.1.seconds));
        Ok(totals)
    }

    /// How KV caches hold their values: f16 by default, as llama.cpp's do (native where the
    /// device has shader-f16, packed in pairs elsewhere).
    pub fn kv_cache(&self) -> KvCache {
        self.kv_cache
    }

    /// Bytes of one cached key or value.
    pub fn kv_value_bytes(&self) -> usize {
        self.kv_cache.value_bytes()
    }

    /// Chooses the KV cache's representation for models loaded afterwards; false (nothing
    /// changed) for native f16 on a device without shader-f16.
    pub fn set_kv_cache(&mut self, kv: KvCache) -> bool {
        if kv == KvCache::F16 && !self.device.features().contains(wgpu::Features::SHADER_F16) {
            return false;
        }
        self.kv_cache = kv;
        true
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
            Some(m) if m.to_lowercase().contains("out of memory") => Err(EngineError::OutOfMemory(m.to_string())),
            Some(m) => Err(EngineError::Gpu(m.to_string())),
        }
    }

    /// Creates a storage buffer, turning allocation failure into an error instead of a panic.
    pub async fn storage_buffer(&self, label: &str, bytes: u64, extra: wgpu::BufferUsages) -> Result<wgpu::Buffer, EngineError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC | extra,
            mapped_at_creation: false,
        });
        if let Some(e) = validation.pop().await {
            return Err(EngineError::Gpu(format!("creating {label} ({bytes} bytes): {e}")));
        }
        if let Some(e) = scope.pop().await {
            return Err(EngineError::OutOfMemory(format!("allocating {label} ({} MiB): {e}", bytes >> 20)));
        }
        Ok(buffer)
    }

    /// Copies the first `bytes` bytes of a storage buffer back to the host (tests, debugging).
    pub async fn read_storage(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, EngineError> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read_storage"),
            size: bytes.next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes.next_multiple_of(4));
        self.queue.submit([encoder.finish()]);
        let mut data = self.read_buffer(&staging, bytes.next_multiple_of(4)).await?;
        data.truncate(bytes as usize);
        Ok(data)
    }

    /// Reads `bytes` bytes of a MAP_READ buffer after the queue has finished with it.
    pub async fn read_buffer(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, EngineError> {
        let slice = buffer.slice(..bytes);
        let (tx, rx) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        // Native: wait for the queue. Web: returns at once; the browser completes the map.
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        let mapped = rx.await.map_err(|_| EngineError::Readback("the GPU dropped the request".into()))?;
        self.check()?;
        mapped.map_err(|e| EngineError::Readback(e.to_string()))?;
        let data = slice.get_mapped_range().map_err(|e| EngineError::Readback(e.to_string()))?.to_vec();
        buffer.unmap();
        Ok(data)
    }
}
