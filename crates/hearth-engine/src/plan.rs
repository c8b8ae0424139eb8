//! What a model takes on a device, decided from its header alone: the browser calls this
//! before downloading a byte of weights, so a model that cannot run is refused up front with
//! the numbers, not after gigabytes of transfer. The sizes of a session's buffers are decided
//! here too, once: `Session` allocates exactly what the plan adds up.

use crate::error::EngineError;
use crate::gpu::Gpu;
use crate::kernels::{
    HeadShape, KernelChoice, TOP_K, TOP_K_CHUNK, X_WINDOW_BYTES, attention_partials_len,
    weight_format_supported,
};
use hearth_gguf::quant::gpu_words;
use hearth_gguf::{GgmlType, Gguf};
use hearth_model::Config;

const MIB: u64 = 1 << 20;

/// Tokens a micro-batch holds at most: prompts longer than this run in several submissions.
pub const MAX_UBATCH: usize = 512;
/// The fewest a budget may cut a micro-batch to before the model counts as not fitting.
const MIN_UBATCH: usize = 32;
/// Logits of every position (`Session::logits`) come back in chunks of at most this many bytes,
/// through one buffer reused for each chunk.
const LOGIT_CHUNK_BYTES: u64 = 16 << 20;
/// Penalty and bias records the GPU takes per sampled token.
pub const MAX_PENALTY_ENTRIES: usize = 8192;
/// The shortest context window worth offering when a budget forces a shorter one.
const MIN_USEFUL_CONTEXT: usize = 512;

/// GPU memory a model takes for a context window, in bytes, and the shape that fits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// The context window, in tokens.
    pub ctx: usize,
    /// Tokens per micro-batch.
    pub ubatch: usize,
    pub weights: u64,
    /// The KV cache when the whole window is used (it grows as the conversation does).
    pub kv_cache: u64,
    /// While the cache grows, one buffer of its old size beside it: at most one layer's keys.
    pub kv_growth: u64,
    /// Every other buffer of a session: `ActivationSizes::total`.
    pub activations: u64,
    /// More while the logits of every position are read back (`Session::logits`, not
    /// generation): one chunk of rows and its read-back buffer.
    pub all_logits: u64,
}

impl MemoryPlan {
    /// What generating at the full window holds, at most.
    pub fn total(&self) -> u64 {
        self.weights + self.kv_cache + self.kv_growth + self.activations
    }
}

/// The bytes `Gpu::buffer` allocates for a request of `bytes`.
fn allocated(bytes: u64) -> u64 {
    bytes.max(16).next_multiple_of(16)
}

/// The size of every buffer a session holds besides its KV cache; f32 unless noted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivationSizes {
    /// Tokens a micro-batch holds.
    pub rows: usize,
    /// u32 (rows): the token ids fed.
    pub tokens: u64,
    /// (rows, n_embd): the residual stream.
    pub x: u64,
    /// (rows, n_embd): rmsnorm(x) where no kernel normalises as it reads; matrix inputs
    /// (this, attn, ffn_act) carry a uniform window's room past their end on CPU adapters.
    pub normed: u64,
    /// (rows, qkv_dim).
    pub qkv: u64,
    /// (rows, n_head · head_dim).
    pub attn: u64,
    /// (n_head, splits, head_dim + 2): split decoding's partial results.
    pub attn_partials: u64,
    /// (rows, 2 n_ff).
    pub gate_up: u64,
    /// (rows, n_ff).
    pub ffn_act: u64,
    /// (1, n_vocab): the last position's logits; more rows only while every position's are
    /// read back.
    pub logits: u64,
    /// u32 (1).
    pub argmax: u64,
    /// u32 (MAX_PENALTY_ENTRIES, 4).
    pub penalties: u64,
    /// u32 (⌈n_vocab / 32⌉): a constraint's allowed tokens, a bit each.
    pub mask: u64,
    /// Each of the four top-k buffers: (⌈n_vocab / TOP_K_CHUNK⌉ · TOP_K).
    pub top_k: u64,
    /// The host-mapped read-back of a sampled token's candidates (2 · TOP_K words).
    pub readback: u64,
    /// The greedy decoder's two 4-byte read-back slots.
    pub token_slots: u64,
}

impl ActivationSizes {
    /// The buffers of micro-batches of `rows` tokens and attention over `ctx` keys;
    /// `input_pad`: the room matrix inputs need past their last row (CPU adapters' windows).
    pub fn new(config: &Config, ctx: usize, rows: usize, input_pad: u64) -> Self {
        let c = config;
        let f32s = |n: usize| (n * 4) as u64;
        let heads = HeadShape {
            n_head: c.n_head as u32,
            n_head_kv: c.n_head_kv as u32,
            head_dim: c.head_dim as u32,
        };
        let top_k = (c.n_vocab as u64).div_ceil(TOP_K_CHUNK as u64) * TOP_K as u64 * 4;
        ActivationSizes {
            rows,
            tokens: f32s(rows),
            x: f32s(rows * c.n_embd),
            normed: f32s(rows * c.n_embd) + input_pad,
            qkv: f32s(rows * c.qkv_dim()),
            attn: f32s(rows * c.n_head * c.head_dim) + input_pad,
            attn_partials: f32s(attention_partials_len(heads, ctx)),
            gate_up: f32s(rows * 2 * c.n_ff),
            ffn_act: f32s(rows * c.n_ff) + input_pad,
            logits: f32s(c.n_vocab),
            argmax: 4,
            penalties: (MAX_PENALTY_ENTRIES * 16) as u64,
            mask: c.n_vocab.div_ceil(32) as u64 * 4,
            top_k,
            readback: 2 * TOP_K as u64 * 4,
            token_slots: 2 * 4,
        }
    }

    /// GPU bytes of them all, as allocated.
    pub fn total(&self) -> u64 {
        let each = [
            self.tokens,
            self.x,
            self.normed,
            self.qkv,
            self.attn,
            self.attn_partials,
            self.gate_up,
            self.ffn_act,
            self.logits,
            self.argmax,
            self.penalties,
            self.mask,
            self.readback,
        ];
        each.iter().map(|&b| allocated(b)).sum::<u64>()
            + 4 * allocated(self.top_k)
            + 2 * allocated(self.token_slots / 2)
    }
}

/// Rows of logits read back per chunk when every position's are wanted: one modest buffer
/// (LOGIT_CHUNK_BYTES, within a binding), at most a micro-batch.
pub fn logit_chunk_rows(config: &Config, binding_limit: u64, ubatch: usize) -> usize {
    let row = config.n_vocab as u64 * 4;
    (LOGIT_CHUNK_BYTES.min(binding_limit) / row).clamp(1, ubatch.max(1) as u64) as usize
}

/// The largest micro-batch whose widest buffer fits one binding, at most MAX_UBATCH and the
/// window.
fn max_ubatch(config: &Config, ctx: usize, binding_limit: u64) -> usize {
    let c = config;
    let widest = [c.qkv_dim(), 2 * c.n_ff, c.n_embd]
        .into_iter()
        .max()
        .unwrap_or(1) as u64
        * 4;
    (binding_limit / widest)
        .min(MAX_UBATCH as u64)
        .min(ctx as u64)
        .max(1) as usize
}

/// Rows of layer `il`'s KV cache in a `ctx`-token window fed `ubatch` tokens at a time: all
/// of them, except on a sliding-window layer, which keeps its window and one micro-batch's
/// fresh rows in a ring (a micro-batch's first query still sees the window before it).
pub(crate) fn layer_kv_rows(c: &Config, il: usize, ctx: usize, ubatch: usize) -> usize {
    match c.layer_attention(il).window {
        Some(window) => ctx.min(window + ubatch.max(1) - 1),
        None => ctx,
    }
}

/// The longest window whose per-layer KV buffer fits one binding.
fn max_bindable_context(config: &Config, value_bytes: usize, binding_limit: u64) -> usize {
    (binding_limit / (config.kv_dim() * value_bytes).max(1) as u64) as usize
}

/// Refuses a context window whose per-layer KV buffer (`value_bytes` per value) exceeds one
/// binding.
pub fn check_context(
    config: &Config,
    ctx: usize,
    value_bytes: usize,
    binding_limit: u64,
) -> Result<(), EngineError> {
    let kv_row = (config.kv_dim() * value_bytes) as u64;
    if ctx == 0 {
        return Err(EngineError::Unsupported(
            "the context window must hold at least one token".into(),
        ));
    }
    if ctx as u64 * kv_row > binding_limit {
        return Err(EngineError::Unsupported(format!(
            "a context window of {ctx} tokens needs {} per KV-cache buffer, more than this \
             GPU's {} binding limit; use a window of at most {} tokens",
            mib(ctx as u64 * kv_row),
            mib(binding_limit),
            binding_limit / kv_row
        )));
    }
    Ok(())
}

/// What a plan is made from: the model's configuration and weights' size, and the device.
pub struct PlanInputs<'a> {
    pub config: &'a Config,
    pub choice: &'a KernelChoice,
    pub binding_limit: u64,
    pub weights: u64,
    /// Weights at Q4_K_M (when known from the file), to suggest when a larger quantization
    /// does not fit.
    pub weights_at_q4_k_m: Option<u64>,
}

/// The plan for a `ctx`-token window (if `None`: the trained window, as much of it as the
/// device can bind and `budget` holds), in micro-batches as large as fit within `budget`.
pub fn plan_for(
    inputs: &PlanInputs,
    ctx: Option<usize>,
    budget: Option<u64>,
) -> Result<MemoryPlan, EngineError> {
    let c = inputs.config;
    let value_bytes = inputs.choice.tuning().kv_format.value_bytes();
    let input_pad = if inputs.choice.wants_uniform_inputs() {
        X_WINDOW_BYTES
    } else {
        0
    };
    let make = |ctx: usize, ubatch: usize| {
        let ubatch = ubatch.min(ctx);
        let sizes = ActivationSizes::new(c, ctx, ubatch, input_pad);
        let chunk = logit_chunk_rows(c, inputs.binding_limit, ubatch) as u64;
        // Keys and values of one row of one layer.
        let row = (2 * c.kv_dim() * value_bytes) as u64;
        let rows: u64 = (0..c.n_layer)
            .map(|il| layer_kv_rows(c, il, ctx, ubatch) as u64)
            .sum();
        MemoryPlan {
            ctx,
            ubatch,
            weights: inputs.weights,
            kv_cache: row * rows,
            kv_growth: row / 2 * ctx.saturating_sub(1) as u64,
            activations: sizes.total(),
            all_logits: 2 * allocated(chunk * c.n_vocab as u64 * 4),
        }
    };
    let trained = c
        .context_length
        .min(max_bindable_context(c, value_bytes, inputs.binding_limit));
    let largest = |ctx: usize| max_ubatch(c, ctx, inputs.binding_limit);
    let Some(budget) = budget else {
        let ctx = ctx.unwrap_or(trained);
        check_context(c, ctx, value_bytes, inputs.binding_limit)?;
        return Ok(make(ctx, largest(ctx)));
    };
    let upper = trained.max(1);
    match ctx {
        None => fitting_plan(&make, budget, upper, largest(upper)).ok_or_else(|| {
            let short = MIN_USEFUL_CONTEXT.min(upper);
            too_big(inputs, &make(short, MIN_UBATCH), budget, None)
        }),
        Some(ctx) => {
            check_context(c, ctx, value_bytes, inputs.binding_limit)?;
            // Smaller micro-batches before giving up: a row of activations costs what a few
            // tokens of KV cache do.
            let mut ubatch = largest(ctx);
            loop {
                let plan = make(ctx, ubatch);
                if plan.total() <= budget {
                    return Ok(plan);
                }
                if ubatch <= MIN_UBATCH {
                    // The longest window that fits at all: at the smallest micro-batch.
                    let longest = fitting_plan(&make, budget, upper, MIN_UBATCH).map(|p| p.ctx);
                    return Err(too_big(inputs, &plan, budget, longest));
                }
                ubatch = (ubatch / 2).max(MIN_UBATCH);
            }
        }
    }
}

/// The longest window, up to `upper` tokens, that fits `budget`: at the largest micro-batch
/// (from `ubatch` down by halves) with which a useful window fits at all. `None` if not even a
/// short window fits.
fn fitting_plan(
    make: &impl Fn(usize, usize) -> MemoryPlan,
    budget: u64,
    upper: usize,
    ubatch: usize,
) -> Option<MemoryPlan> {
    let short = MIN_USEFUL_CONTEXT.min(upper);
    let mut ubatch = ubatch;
    while make(short, ubatch).total() > budget {
        if ubatch <= MIN_UBATCH {
            return None;
        }
        ubatch = (ubatch / 2).max(MIN_UBATCH);
    }
    // The plan grows with the window: the longest that fits, by bisection.
    let (mut fits, mut too_long) = (short, upper + 1);
    while too_long - fits > 1 {
        let mid = fits + (too_long - fits) / 2;
        if make(mid, ubatch).total() <= budget {
            fits = mid
        } else {
            too_long = mid
        }
    }
    Some(make(fits, ubatch))
}

/// `bytes` in MiB, one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// How much a device has, how much the model needs, and what would fit: a window of
/// `fitting_ctx` tokens, if one does.
fn too_big(
    inputs: &PlanInputs,
    plan: &MemoryPlan,
    budget: u64,
    fitting_ctx: Option<usize>,
) -> EngineError {
    let need = format!(
        "this model needs about {} of GPU memory at a {}-token context window ({} of weights, {} \
         of KV cache, {} of activations), but the GPU has {}",
        mib(plan.total()),
        plan.ctx,
        mib(plan.weights),
        mib(plan.kv_cache + plan.kv_growth),
        mib(plan.activations),
        mib(budget)
    );
    let hint = match fitting_ctx {
        Some(ctx) => format!("; a context window of up to {ctx} tokens fits"),
        None => {
            let smaller = match inputs.weights_at_q4_k_m {
                Some(q4) if q4 + plan.activations < budget && q4 * 10 < inputs.weights * 9 => {
                    format!(
                        "a smaller quantization (at Q4_K_M its weights take about {}) or ",
                        mib(q4)
                    )
                }
                _ => String::new(),
            };
            format!(
                "; even a short window does not fit beside {} of weights: choose {smaller}a \
                 smaller model",
                mib(plan.weights)
            )
        }
    };
    EngineError::OutOfMemory(need + &hint)
}

/// Checks that `gguf` (whose configuration is `config`) can run on `gpu` and plans its memory
/// for a `ctx`-token window (see `plan_for`) within `budget` bytes of GPU memory, when the
/// caller knows one (WebGPU does not say how much memory a device has).
pub fn plan(
    gpu: &Gpu,
    gguf: &Gguf,
    config: &Config,
    ctx: Option<usize>,
    budget: Option<u64>,
) -> Result<MemoryPlan, EngineError> {
    let limit = gpu.max_binding_bytes();
    let mut q4_k_m = 0;
    for (name, _, is_matrix) in config.expected_tensors() {
        let Some(t) = gguf.tensor(&name) else {
            continue;
        };
        if !is_matrix {
            q4_k_m += t.n_bytes;
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
                "a row of '{name}' takes {row_bytes} bytes, more than this GPU can bind ({limit} \
                 bytes)"
            )));
        }
        // Q4_K_M: most matrices in Q4_K, about a sixth in Q6_K.
        let at = |ty: GgmlType| ty.bytes_for(t.n_elements()).unwrap_or(t.n_bytes);
        q4_k_m += (5 * at(GgmlType::Q4K) + at(GgmlType::Q6K)) / 6;
    }
    let choice = KernelChoice::new(gpu);
    let inputs = PlanInputs {
        config,
        choice: &choice,
        binding_limit: limit,
        weights: config.weight_bytes(gguf),
        weights_at_q4_k_m: Some(q4_k_m),
    };
    plan_for(&inputs, ctx, budget)
}
