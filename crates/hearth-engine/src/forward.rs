//! The forward pass of a decoder-only transformer, read top to bottom: one micro-batch of
//! tokens through the embedding, every layer and the head, recorded as GPU dispatches into
//! one submission. Architectures differ in data (`hearth_model::Config`: which weights exist,
//! fused or separate, how RoPE pairs dimensions), never in branches here.

use crate::error::EngineError;
use crate::kernels::{
    AttentionBuffers, MatrixInput, MatrixOutput, Positions, Recorder, RmsNorm, RopeShape, TOP_K,
    TOP_K_CHUNK, X_WINDOW_BYTES, attention_partials_len,
};
use crate::model::Model;
use crate::weights::GpuVector;
use hearth_model::{Config, RopeStyle};

/// Penalty and bias records the GPU takes per sampled token.
pub const MAX_PENALTY_ENTRIES: usize = 8192;

/// The buffers one micro-batch of up to `rows` tokens flows through; f32 unless noted.
pub(crate) struct Activations {
    pub rows: usize,
    /// u32 (rows): the token ids fed from the host.
    pub tokens: wgpu::Buffer,
    /// (rows, n_embd): the residual stream.
    pub x: wgpu::Buffer,
    /// (rows, n_embd): rmsnorm(x), where no matrix kernel normalises as it reads.
    pub normed: wgpu::Buffer,
    /// (rows, qkv_dim): each token's query heads, then key heads, then value heads.
    pub qkv: wgpu::Buffer,
    /// (rows, n_head · head_dim): attention's output, before the output projection.
    pub attn: wgpu::Buffer,
    /// (n_head, splits, head_dim + 2): split decoding's partial outputs, maxima and sums.
    pub attn_partials: wgpu::Buffer,
    /// (rows, 2 n_ff): [gate | up], where the gate is not applied inside the product.
    pub gate_up: wgpu::Buffer,
    /// (rows, n_ff): silu(gate) · up.
    pub ffn_act: wgpu::Buffer,
    /// (logits_rows, n_vocab).
    pub logits: wgpu::Buffer,
    pub logits_rows: usize,
    /// u32 (1): the greedy token.
    pub argmax: wgpu::Buffer,
    /// u32 (MAX_PENALTY_ENTRIES, 4): (token, count, bias bits, 0) records.
    pub penalties: wgpu::Buffer,
    /// Ping-pong (values f32, token ids u32) of the top-k rounds: (⌈n_vocab / 2048⌉ · 128).
    pub top_k: [(wgpu::Buffer, wgpu::Buffer); 2],
    /// Host-mapped: the bytes of (logits_rows, n_vocab) f32, the largest read-back.
    pub readback: wgpu::Buffer,
}

impl Activations {
    /// Buffers for micro-batches of up to `rows` tokens, logits for `logits_rows` of them,
    /// and attention over up to `ctx` keys.
    pub async fn new(
        model: &Model,
        rows: usize,
        logits_rows: usize,
        ctx: usize,
    ) -> Result<Self, EngineError> {
        let (c, gpu) = (&model.config, &model.gpu);
        let f32s = |n: usize| (n * 4) as u64;
        let none = wgpu::BufferUsages::empty();
        // Matrix inputs (normed, attention out, ffn act): CPU adapters read them as uniform
        // windows, which need the usage and room for a whole window past the last row.
        let (input_usage, input_pad) = match model.kernels.choice().wants_uniform_inputs() {
            true => (wgpu::BufferUsages::UNIFORM, X_WINDOW_BYTES),
            false => (none, 0),
        };
        let input = async |label, values| {
            gpu.storage_buffer(label, f32s(values) + input_pad, input_usage)
                .await
        };
        let storage = async |label, bytes| gpu.storage_buffer(label, bytes, none).await;
        let top_k_len = (c.n_vocab as u64).div_ceil(TOP_K_CHUNK as u64) * TOP_K as u64 * 4;
        let attn_partials = attention_partials_len(model.heads(), ctx);
        Ok(Activations {
            rows,
            tokens: storage("tokens", f32s(rows)).await?,
            x: storage("residual", f32s(rows * c.n_embd)).await?,
            normed: input("normed", rows * c.n_embd).await?,
            qkv: storage("qkv", f32s(rows * c.qkv_dim())).await?,
            attn: input("attention out", rows * c.n_embd).await?,
            attn_partials: storage("attention partials", f32s(attn_partials)).await?,
            gate_up: storage("gate|up", f32s(rows * 2 * c.n_ff)).await?,
            ffn_act: input("ffn act", rows * c.n_ff).await?,
            logits: storage("logits", f32s(logits_rows * c.n_vocab)).await?,
            logits_rows,
            argmax: storage("argmax", 4).await?,
            penalties: storage("penalties", (MAX_PENALTY_ENTRIES * 16) as u64).await?,
            top_k: [
                (
                    storage("top-k values", top_k_len).await?,
                    storage("top-k ids", top_k_len).await?,
                ),
                (
                    storage("top-k values", top_k_len).await?,
                    storage("top-k ids", top_k_len).await?,
                ),
            ],
            readback: gpu.readback_buffer("readback", f32s(logits_rows * c.n_vocab)),
        })
    }

    /// GPU bytes of every buffer.
    pub fn bytes(&self) -> u64 {
        let top_k = self
            .top_k
            .iter()
            .map(|(v, i)| v.size() + i.size())
            .sum::<u64>();
        let buffers = [
            &self.tokens,
            &self.x,
            &self.normed,
            &self.qkv,
            &self.attn,
            &self.attn_partials,
            &self.gate_up,
            &self.ffn_act,
            &self.logits,
            &self.argmax,
            &self.penalties,
            &self.readback,
        ];
        buffers.iter().map(|b| b.size()).sum::<u64>() + top_k
    }
}

/// One layer's KV cache: (capacity, n_head_kv · head_dim) values each, a row per position.
pub(crate) struct LayerKv {
    pub k: wgpu::Buffer,
    pub v: wgpu::Buffer,
}

/// What the head computes after the last position of a micro-batch.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Head {
    /// Nothing: a micro-batch before the last only fills the KV cache.
    None,
    /// Logits of every position.
    AllLogits,
    /// The greedy token after the last position, into the argmax buffer.
    Argmax,
    /// The TOP_K best (value, token) pairs after the last position, once `n_entries`
    /// penalty records (already in the penalties buffer) and [repeat, frequency, presence]
    /// penalties are applied.
    Candidates { n_entries: u32, penalties: [f32; 3] },
}

/// One micro-batch: `n_tokens` tokens at positions `pos0..`, their ids in `token_ids` (the
/// host's tokens buffer, or the argmax buffer when the GPU feeds its own last choice).
pub(crate) struct Step<'a> {
    pub token_ids: &'a wgpu::Buffer,
    pub at: Positions,
    /// LongRoPE's frequency factors for this session (ones without LongRoPE).
    pub rope_factors: &'a GpuVector,
    pub head: Head,
}

/// The attention geometry of `c`, with qkv rows of `qkv_dim` values.
fn rope_shape(c: &Config) -> RopeShape {
    RopeShape {
        n_head: c.n_head as u32,
        n_head_kv: c.n_head_kv as u32,
        head_dim: c.head_dim as u32,
        n_rot: c.n_rot as u32,
        qkv_stride: c.qkv_dim() as u32,
        neox: c.rope_style == RopeStyle::Neox,
        base: c.rope_base,
        freq_scale: c.rope_freq_scale,
        attn_factor: c.rope_attn_factor,
    }
}

/// Records one micro-batch through the whole model: the residual stream in `act.x`, keys and
/// values into `kv` at the step's positions, then the head. Returns the regions (buffer,
/// bytes) that hold the head's result.
pub(crate) fn record_forward<'a>(
    rec: &mut Recorder<'a>,
    model: &'a Model,
    act: &'a Activations,
    kv: &'a [LayerKv],
    step: &Step<'a>,
) -> Vec<(&'a wgpu::Buffer, u64)> {
    let c = &model.config;
    let n = step.at.n_tokens;
    let (d, n_vocab) = (c.n_embd as u32, c.n_vocab as u32);
    let rope = rope_shape(c);
    // RMSNorm of the residual rows from `row` on, as the input of the matrices after it
    // (fused into their kernels where they can; else it fills `normed` first).
    let norm = |gain| RmsNorm {
        gain,
        eps: c.rms_eps,
        scratch: &act.normed,
    };
    let norm_of_x = |gain, row| MatrixInput::normed(&act.x, row, norm(gain));

    // Token embeddings become the residual stream x: (n, n_embd).
    rec.embed(&model.token_embd, step.token_ids, n, &act.x);
    for (layer, cache) in model.layers.iter().zip(kv) {
        // Attention block: x += Wo · attention(rope(Wqkv · norm(x))).
        let weights = layer.qkv.iter().map(|p| &p.weight);
        let normed = rec.prepare_input(norm_of_x(&layer.attn_norm, 0), n, weights);
        for p in &layer.qkv {
            let qkv = MatrixOutput::rows(&act.qkv, rope.qkv_stride).at(p.out_offset);
            rec.matmul(&p.weight, normed, n, qkv);
        }
        let buffers = AttentionBuffers {
            qkv: &act.qkv,
            k_cache: &cache.k,
            v_cache: &cache.v,
            out: &act.attn,
            partials: &act.attn_partials,
        };
        rec.rope_attention(&rope, step.rope_factors, step.at, &buffers);
        let residual = MatrixOutput::rows(&act.x, d).adding();
        rec.matmul(
            &layer.attn_output,
            MatrixInput::rows(&act.attn, 0),
            n,
            residual,
        );

        // Feed-forward block: x += Wdown · (silu(gate) · up), [gate | up] = Wgate_up · norm(x).
        let ffn_in = norm_of_x(&layer.ffn_norm, 0);
        rec.gated_ffn_input(&layer.ffn_gate_up, ffn_in, n, &act.gate_up, &act.ffn_act);
        rec.matmul(
            &layer.ffn_down,
            MatrixInput::rows(&act.ffn_act, 0),
            n,
            residual,
        );
    }

    // Head: the final norm and the vocabulary projection, for every position or the last.
    let logits = MatrixOutput::rows(&act.logits, n_vocab);
    let last_normed = norm_of_x(&model.output_norm, n - 1);
    match step.head {
        Head::None => Vec::new(),
        Head::AllLogits => {
            rec.matmul(model.output(), norm_of_x(&model.output_norm, 0), n, logits);
            vec![(&act.logits, (n * n_vocab * 4) as u64)]
        }
        Head::Argmax => {
            rec.matmul(model.output(), last_normed, 1, logits);
            rec.argmax(&act.logits, n_vocab, &act.argmax);
            vec![(&act.argmax, 4)]
        }
        Head::Candidates {
            n_entries,
            penalties,
        } => {
            rec.matmul(model.output(), last_normed, 1, logits);
            rec.penalize(&act.logits, &act.penalties, n_entries, penalties);
            let (values, ids) = rec.top_k(&act.logits, n_vocab, &act.top_k);
            vec![(values, TOP_K as u64 * 4), (ids, TOP_K as u64 * 4)]
        }
    }
}
