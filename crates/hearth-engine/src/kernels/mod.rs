//! WGSL kernels: which ones a model needs and which one computes what ([`choice`]), their
//! WGSL and specialisations ([`source`]) and typed parameters ([`params`]), compiled once per
//! model ([`Kernels`]), then recorded into one command submission per forward pass
//! ([`record`]) and encoded ([`encode`]).

pub mod choice;
pub mod encode;
pub mod params;
pub mod record;
pub mod source;

pub use choice::{AttentionPlan, HeadShape, KernelChoice, MatrixKernel, attention_partials_len};
pub use encode::SubmitCache;
pub use record::{
    AttentionBuffers, MatrixInput, MatrixOutput, Positions, Recorder, RmsNorm, RopeShape,
};
pub use source::{Kernel, TOP_K, TOP_K_CHUNK, X_WINDOW_BYTES, weight_format_supported};

use crate::error::EngineError;
use crate::gpu::{Gpu, ScopeVerdict};
use hearth_gguf::GgmlType;
use std::collections::HashMap;

/// Each kernel's pipeline and the device's verdict on it, still to come in the browser.
type Compiled = Vec<(Kernel, wgpu::ComputePipeline, ScopeVerdict)>;

enum Compiling {
    #[cfg(not(target_arch = "wasm32"))]
    Thread(futures_channel::oneshot::Receiver<Result<Compiled, EngineError>>),
    Done(Result<Compiled, EngineError>),
}

/// Pipelines on their way: [`CompilingKernels::ready`] waits for them.
pub struct CompilingKernels {
    choice: KernelChoice,
    compiled: Vec<Compiling>,
}

impl CompilingKernels {
    /// The kernels once every pipeline has compiled, or the first that failed to.
    pub async fn ready(self) -> Result<Kernels, EngineError> {
        let mut all = Vec::new();
        for part in self.compiled {
            all.extend(match part {
                #[cfg(not(target_arch = "wasm32"))]
                Compiling::Thread(rx) => rx.await.map_err(|_| {
                    EngineError::Gpu("a thread compiling the kernels stopped".into())
                })??,
                Compiling::Done(result) => result?,
            });
        }
        let mut pipelines = HashMap::new();
        for (kernel, pipeline, verdict) in all {
            if let Some(e) = verdict.await {
                return Err(EngineError::Gpu(format!(
                    "compiling the {kernel} kernel: {e}"
                )));
            }
            pipelines.insert(kernel, pipeline);
        }
        Ok(Kernels {
            pipelines,
            choice: self.choice,
        })
    }
}

fn start_pipelines(
    device: &wgpu::Device,
    kernels: &[Kernel],
    kv_format: crate::gpu::KvFormat,
) -> Result<Compiled, EngineError> {
    kernels
        .iter()
        .map(|&kernel| {
            let (pipeline, verdict) = start_pipeline(device, kernel, kv_format)?;
            Ok((kernel, pipeline, verdict))
        })
        .collect()
}

/// Creates `kernel`'s pipeline inside an error scope of its own, popped at once: the verdict
/// arrives when the device has compiled it.
fn start_pipeline(
    device: &wgpu::Device,
    kernel: Kernel,
    kv_format: crate::gpu::KvFormat,
) -> Result<(wgpu::ComputePipeline, ScopeVerdict), EngineError> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let label = kernel.to_string();
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(&label),
        source: wgpu::ShaderSource::Wgsl(kernel.source(kv_format)?.into()),
    });
    let constants = kernel.constants();
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(&label),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &constants,
            ..Default::default()
        },
        cache: None,
    });
    Ok((pipeline, Box::pin(scope.pop())))
}

/// A model's compiled pipelines, made once at load time, and the choices they were made for.
pub struct Kernels {
    pipelines: HashMap<Kernel, wgpu::ComputePipeline>,
    choice: KernelChoice,
}

impl Kernels {
    /// Compiles the generic kernels and the matrix kernels for each weight format in
    /// `formats`; `heads` adds the attention kernels for heads of that shape.
    pub async fn new(
        gpu: &Gpu,
        formats: impl IntoIterator<Item = GgmlType>,
        heads: Option<HeadShape>,
    ) -> Result<Self, EngineError> {
        Self::compile(gpu, formats, heads).ready().await
    }

    /// Starts compiling what [`Kernels::new`] compiles and returns at once, so that a model's
    /// weights upload while its pipelines compile: natively on a thread of its own, in the
    /// browser in the GPU process, which compiles each pipeline as it reaches it.
    pub fn compile(
        gpu: &Gpu,
        formats: impl IntoIterator<Item = GgmlType>,
        heads: Option<HeadShape>,
    ) -> CompilingKernels {
        let choice = KernelChoice::new(gpu);
        let kv_format = choice.tuning().kv_format;
        let kernels = choice.kernels_needed(formats, heads);
        #[cfg(not(target_arch = "wasm32"))]
        let compiled = {
            // A few threads, each settling its own error scopes (wgpu keeps them per thread):
            // by the time one sends, its verdicts are in.
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
            let mut receivers = Vec::new();
            for t in 0..threads {
                let share: Vec<Kernel> = kernels.iter().copied().skip(t).step_by(threads).collect();
                let on_thread = share.clone();
                let device = gpu.device.clone();
                let (tx, rx) = futures_channel::oneshot::channel();
                let spawned = std::thread::Builder::new()
                    .name("hearth-compile".into())
                    .spawn(move || {
                        let _ = tx.send(start_pipelines(&device, &on_thread, kv_format));
                    });
                receivers.push(match spawned {
                    Ok(_) => Compiling::Thread(rx),
                    // No thread to be had: compile here and now.
                    Err(_) => Compiling::Done(start_pipelines(&gpu.device, &share, kv_format)),
                });
            }
            receivers
        };
        #[cfg(target_arch = "wasm32")]
        let compiled = vec![Compiling::Done(start_pipelines(
            &gpu.device,
            &kernels,
            kv_format,
        ))];
        CompilingKernels { choice, compiled }
    }

    /// Which kernel computes what, as these were compiled for.
    pub fn choice(&self) -> &KernelChoice {
        &self.choice
    }

    fn pipeline(&self, kernel: Kernel) -> &wgpu::ComputePipeline {
        // Every kernel a model uses was compiled in `new`, from the same choices.
        &self.pipelines[&kernel]
    }
}
