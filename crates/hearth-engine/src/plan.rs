//! What a model will take on this device, decided from its header alone: the browser calls
//! this before downloading a byte of weights, so a model that cannot run is refused up front
//! with the numbers, not after gigabytes of transfer.

use crate::error::EngineError;
use crate::gpu::Gpu;
use crate::kernels::weight_format_supported;
use hearth_gguf::Gguf;
use hearth_gguf::quant::gpu_words;
use hearth_model::Config;

/// GPU memory a model needs for a context window, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    pub weights: u64,
    /// KV cache when the whole context window is used.
    pub kv_cache: u64,
    /// Activations of the largest micro-batch, logits included (an upper bound).
    pub activations: u64,
}

impl MemoryPlan {
    pub fn total(&self) -> u64 {
        self.weights + self.kv_cache + self.activations
    }
}

const MIB: u64 = 1 << 20;

/// Tokens a micro-batch holds at most: prompts longer than this run in several submissions.
pub const MAX_UBATCH: usize = 512;

/// Refuses a context window whose per-layer KV buffer (`value_bytes` per value) exceeds one
/// binding.
pub fn check_context(
    config: &Config,
    ctx: usize,
    value_bytes: usize,
    binding_limit: u64,
) -> Result<(), EngineError> {
    let kv_row = (config.kv_dim() * value_bytes) as u64;
    if ctx as u64 * kv_row > binding_limit {
        return Err(EngineError::Unsupported(format!(
            "a context window of {ctx} tokens needs {} MiB per KV-cache buffer, more than this \
             GPU's {} MiB binding limit; use a window of at most {} tokens",
            ctx as u64 * kv_row / MIB,
            binding_limit / MIB,
            binding_limit / kv_row
        )));
    }
    Ok(())
}

/// Checks that `gguf` (whose configuration is `config`) can run on `gpu` with a `ctx`-token
/// window (the trained window if `None`) within `budget` bytes of GPU memory, when the caller
/// knows one (WebGPU does not say how much memory a device has).
pub fn plan(
    gpu: &Gpu,
    gguf: &Gguf,
    config: &Config,
    ctx: Option<usize>,
    budget: Option<u64>,
) -> Result<MemoryPlan, EngineError> {
    let ctx = ctx.unwrap_or(config.context_length);
    let limit = gpu.max_binding_bytes();
    for (name, _, is_matrix) in config.expected_tensors() {
        let Some(t) = gguf.tensor(&name) else {
            continue;
        };
        if !is_matrix {
            continue;
        }
        if !weight_format_supported(t.ty) {
            return Err(EngineError::Unsupported(format!(
                "tensor '{name}' is stored as {}, which Hearth cannot run on the GPU yet",
                t.ty
            )));
        }
        let row_bytes = 4 * gpu_words(t.ty, t.dims[0] as usize) as u64;
        if 2 * row_bytes > limit {
            return Err(EngineError::Unsupported(format!(
                "a row of '{name}' takes {row_bytes} bytes, more than this GPU can bind ({limit} bytes)"
            )));
        }
    }
    let kv_bytes = gpu.tuning().kv_format.value_bytes();
    check_context(config, ctx, kv_bytes, limit)?;
    let rows = MAX_UBATCH.min(ctx) as u64;
    let widest = (config.n_embd * 3 + config.qkv_dim() + 3 * config.n_ff) as u64 * 4;
    let logits = (config.n_vocab as u64 * 4 * rows).min(limit);
    let plan = MemoryPlan {
        weights: config.weight_bytes(gguf),
        kv_cache: config.kv_bytes_per_token(kv_bytes) * ctx as u64,
        activations: rows * widest + 2 * logits,
    };
    if let Some(budget) = budget
        && plan.total() > budget
    {
        return Err(EngineError::OutOfMemory(format!(
            "this model needs about {} MiB of GPU memory ({} MiB of weights, {} MiB of KV cache \
             for {ctx} tokens, {} MiB of activations) but only {} MiB are available; choose a \
             smaller model or quantization, or a shorter context",
            plan.total() / MIB,
            plan.weights / MIB,
            plan.kv_cache / MIB,
            plan.activations / MIB,
            budget / MIB
        )));
    }
    Ok(plan)
}
