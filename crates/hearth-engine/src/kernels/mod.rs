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
use crate::gpu::Gpu;
use hearth_gguf::GgmlType;
use std::collections::HashMap;

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
        let choice = KernelChoice::new(gpu);
        let kv_format = choice.tuning().kv_format;
        let mut pipelines = HashMap::new();
        for kernel in choice.kernels_needed(formats, heads) {
            let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
            let label = kernel.to_string();
            let module = gpu
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&label),
                    source: wgpu::ShaderSource::Wgsl(kernel.source(kv_format)?.into()),
                });
            let constants = kernel.constants();
            let pipeline = gpu
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
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
            if let Some(e) = scope.pop().await {
                return Err(EngineError::Gpu(format!(
                    "compiling the {label} kernel: {e}"
                )));
            }
            pipelines.insert(kernel, pipeline);
        }
        Ok(Kernels { pipelines, choice })
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
