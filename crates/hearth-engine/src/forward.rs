//! The forward pass of a decoder-only transformer, read top to bottom: one micro-batch of
//! tokens through the embedding, every layer and the head, recorded as GPU dispatches into
//! one submission. Architectures differ in data (`hearth_model::Config`: which weights exist,
//! fused or separate, how RoPE pairs dimensions), never in branches here.

use crate::error::EngineError;
use crate::gpu::{Gpu, GpuBuffer};
use crate::kernels::{
    AttentionBuffers, MatrixInput, MatrixOutput, Positions, Recorder, RmsNorm, RopeShape, TOP_K,
};
use crate::model::Model;
use crate::plan::ActivationSizes;
use crate::weights::GpuVector;
use hearth_model::{Activation, Config, RopeStyle};

/// The buffers one micro-batch of up to `sizes.rows` tokens flows through (shapes: see
/// `ActivationSizes`, which decides their sizes); f32 unless noted.
pub(crate) struct Activations {
    pub sizes: ActivationSizes,
    /// u32 (rows): the token ids fed from the host.
    pub tokens: GpuBuffer,
    /// (rows, n_embd): the residual stream.
    pub x: GpuBuffer,
    /// (rows, n_embd): rmsnorm(x), where no matrix kernel normalises as it reads.
    pub normed: GpuBuffer,
    /// (rows, qkv_dim): each token's query heads, then key heads, then value heads.
    pub qkv: GpuBuffer,
    /// (rows, n_head · head_dim): attention's output, before the output projection.
    pub attn: GpuBuffer,
    /// (n_head, splits, head_dim + 2): split decoding's partial outputs, maxima and sums.
    pub attn_partials: GpuBuffer,
    /// (rows, 2 n_ff): [gate | up], where the gate is not applied inside the product.
    pub gate_up: GpuBuffer,
    /// (rows, n_ff): silu(gate) · up.
    pub ffn_act: GpuBuffer,
    /// (logit_rows, n_vocab): one row, more only while every position's logits are read.
    pub logits: GpuBuffer,
    pub logit_rows: usize,
    /// u32 (1): the greedy token.
    pub argmax: GpuBuffer,
    /// u32 (MAX_PENALTY_ENTRIES, 4): (token, count, bias bits, 0) records.
    pub penalties: GpuBuffer,
    /// u32 (⌈n_vocab / 32⌉): a constraint's allowed tokens, a bit each.
    pub mask: GpuBuffer,
    /// Ping-pong (values f32, token ids u32) of the top-k rounds.
    pub top_k: [(GpuBuffer, GpuBuffer); 2],
    /// Host-mapped: a sampled token's candidates, or a chunk of logits rows.
    pub readback: GpuBuffer,
}

impl Activations {
    /// Allocates the buffers `sizes` describes.
    pub async fn new(model: &Model, sizes: &ActivationSizes) -> Result<Self, EngineError> {
        let gpu = &model.gpu;
        let none = wgpu::BufferUsages::empty();
        // Matrix inputs (normed, attention out, ffn act): CPU adapters read them as uniform
        // windows (their sizes leave room for one past the last row).
        let input_usage = match model.kernels.choice().wants_uniform_inputs() {
            true => wgpu::BufferUsages::UNIFORM,
            false => none,
        };
        let input = async |label: &str, bytes| gpu.storage_buffer(label, bytes, input_usage).await;
        let storage = async |label: &str, bytes| gpu.storage_buffer(label, bytes, none).await;
        let top_k = async || -> Result<(GpuBuffer, GpuBuffer), EngineError> {
            let values = storage("top-k values", sizes.top_k).await?;
            Ok((values, storage("top-k ids", sizes.top_k).await?))
        };
        Ok(Activations {
            sizes: *sizes,
            tokens: storage("tokens", sizes.tokens).await?,
            x: storage("residual", sizes.x).await?,
            normed: input("normed", sizes.normed).await?,
            qkv: storage("qkv", sizes.qkv).await?,
            attn: input("attention out", sizes.attn).await?,
            attn_partials: storage("attention partials", sizes.attn_partials).await?,
            gate_up: storage("gate|up", sizes.gate_up).await?,
            ffn_act: input("ffn act", sizes.ffn_act).await?,
            logits: storage("logits", sizes.logits).await?,
            logit_rows: 1,
            argmax: storage("argmax", sizes.argmax).await?,
            penalties: storage("penalties", sizes.penalties).await?,
            mask: storage("token mask", sizes.mask).await?,
            top_k: [top_k().await?, top_k().await?],
            readback: gpu.readback_buffer("readback", sizes.readback).await?,
        })
    }

    /// Makes room for `rows` rows of logits and their read-back (every position's logits,
    /// a chunk at a time). Returns whether the logits buffer was replaced, so that bind groups
    /// holding the old one can be dropped.
    pub async fn reserve_logit_rows(
        &mut self,
        gpu: &Gpu,
        n_vocab: usize,
        rows: usize,
    ) -> Result<bool, EngineError> {
        let bytes = (rows * n_vocab * 4) as u64;
        if self.readback.size() < bytes {
            self.readback = gpu.readback_buffer("readback", bytes).await?;
        }
        if rows <= self.logit_rows {
            return Ok(false);
        }
        self.logits = gpu
            .storage_buffer("logits", bytes, wgpu::BufferUsages::empty())
            .await?;
        self.logit_rows = rows;
        Ok(true)
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
            &self.mask,
            &self.readback,
        ];
        buffers.iter().map(|b| b.size()).sum::<u64>() + top_k
    }
}

/// One layer's KV cache: (rows, n_head_kv · head_dim) values each; position p in row
/// p % rows (a ring on sliding-window layers, once they hold `plan::layer_kv_rows`).
pub(crate) struct LayerKv {
    pub k: GpuBuffer,
    pub v: GpuBuffer,
    pub rows: usize,
}

/// What the head computes after a micro-batch of `n_tokens` tokens.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Head {
    /// Nothing: a micro-batch before the last only fills the KV cache.
    None,
    /// Logits of rows `[first, first + rows)` of the micro-batch (every position's logits come
    /// a chunk at a time).
    Logits { first: u32, rows: u32 },
    /// The greedy token after the last position, into the argmax buffer; among the tokens
    /// the mask buffer allows where `masked`.
    Argmax { masked: bool },
    /// The TOP_K best (value, token) pairs after the last position, once `n_entries`
    /// penalty records (already in the penalties buffer) and [repeat, frequency, presence]
    /// penalties are applied, and where `masked` the mask buffer's disallowed tokens dropped.
    Candidates {
        n_entries: u32,
        penalties: [f32; 3],
        masked: bool,
    },
}

/// One micro-batch: `at.n_tokens` tokens at positions `at.pos0..`, their ids in `token_ids`
/// (the host's tokens buffer, or the argmax buffer when the GPU feeds its own last choice).
pub(crate) struct Step<'a> {
    pub token_ids: &'a wgpu::Buffer,
    pub at: Positions,
    /// LongRoPE's frequency factors for this session (ones without LongRoPE).
    pub rope_factors: &'a GpuVector,
}

/// The attention geometry of layer `il` of `c`, with qkv rows of `qkv_dim` values.
fn rope_shape(c: &Config, il: usize) -> RopeShape {
    let layer = c.layer_attention(il);
    RopeShape {
        n_head: c.n_head as u32,
        n_head_kv: c.n_head_kv as u32,
        head_dim: c.head_dim as u32,
        n_rot: c.n_rot as u32,
        qkv_stride: c.qkv_dim() as u32,
        neox: c.rope_style == RopeStyle::Neox,
        base: layer.rope_base,
        freq_scale: layer.rope_freq_scale,
        attn_factor: c.rope_attn_factor,
        scale: c.attn_scale,
        window: layer.window.map_or(0, |w| w as u32),
    }
}

/// RMSNorm of the residual rows from `row` on, as the input of the matrices after it (fused
/// into their kernels where they can; else it fills `normed` first).
fn norm_of_x<'a>(
    act: &'a Activations,
    c: &Config,
    gain: &'a GpuVector,
    row: u32,
) -> MatrixInput<'a> {
    let norm = RmsNorm {
        gain,
        eps: c.rms_eps,
        scratch: &act.normed,
    };
    MatrixInput::normed(&act.x, row, norm)
}

/// Records one micro-batch through the model's layers: the residual stream in `act.x`, keys
/// and values into `kv` at the step's positions.
pub(crate) fn record_layers<'a>(
    rec: &mut Recorder<'a>,
    model: &'a Model,
    act: &'a Activations,
    kv: &'a [LayerKv],
    step: &Step<'a>,
) {
    let c = &model.config;
    let n = step.at.n_tokens;
    let residual = MatrixOutput::rows(&act.x, c.n_embd as u32).adding();
    let gelu = c.activation == Activation::GeluTanh;
    // A block's output (n, n_embd) to x: added, or where the model norms it first (Gemma 3),
    // written to `normed` (free by then) and its norm added.
    let block_output = |post_norm: &Option<GpuVector>| match post_norm {
        None => residual,
        Some(_) => MatrixOutput::rows(&act.normed, c.n_embd as u32),
    };
    let add_post_norm = |rec: &mut Recorder<'a>, post_norm: &'a Option<GpuVector>| {
        if let Some(gain) = post_norm {
            rec.rms_norm_add(&act.normed, n, gain, c.rms_eps, &act.x);
        }
    };

    // Token embeddings (scaled, in Gemma) become the residual stream x: (n, n_embd).
    rec.embed(&model.token_embd, c.embd_scale, step.token_ids, n, &act.x);
    for (il, (layer, cache)) in model.layers.iter().zip(kv).enumerate() {
        // Per layer: the RoPE base and, on sliding-window layers, the keys attention sees.
        let rope = rope_shape(c, il);
        // Attention block: x += [norm](Wo · attention(rope(Wqkv · norm(x) [+ b] [, q/k heads
        // normed]))).
        let weights = layer.qkv.iter().map(|p| &p.weight);
        let normed = rec.prepare_input(norm_of_x(act, c, &layer.attn_norm, 0), n, weights);
        for p in &layer.qkv {
            let qkv = MatrixOutput::rows(&act.qkv, rope.qkv_stride).at(p.out_offset);
            rec.matmul(&p.weight, normed, n, qkv);
        }
        if let Some(bias) = &layer.qkv_bias {
            rec.add_bias(&act.qkv, rope.qkv_stride, n, bias);
        }
        if let Some((q_gain, k_gain)) = &layer.qk_norm {
            let heads = model.heads();
            rec.head_norm(
                &act.qkv,
                heads,
                rope.qkv_stride,
                n,
                q_gain,
                k_gain,
                c.rms_eps,
            );
        }
        let buffers = AttentionBuffers {
            qkv: &act.qkv,
            k_cache: &cache.k,
            v_cache: &cache.v,
            kv_rows: cache.rows as u32,
            out: &act.attn,
            partials: &act.attn_partials,
        };
        rec.rope_attention(&rope, step.rope_factors, step.at, &buffers);
        rec.matmul(
            &layer.attn_output,
            MatrixInput::rows(&act.attn, 0),
            n,
            block_output(&layer.post_attn_norm),
        );
        add_post_norm(rec, &layer.post_attn_norm);

        // Feed-forward block: x += [norm](Wdown · (act(gate) · up)), [gate | up] = Wgate_up ·
        // norm(x), act SiLU or GELU.
        let ffn_in = norm_of_x(act, c, &layer.ffn_norm, 0);
        let (gate_up, ffn_act) = (&act.gate_up, &act.ffn_act);
        rec.gated_ffn_input(&layer.ffn_gate_up, gelu, ffn_in, n, gate_up, ffn_act);
        rec.matmul(
            &layer.ffn_down,
            MatrixInput::rows(&act.ffn_act, 0),
            n,
            block_output(&layer.post_ffn_norm),
        );
        add_post_norm(rec, &layer.post_ffn_norm);
    }
}

/// Records the head after a micro-batch of `n_tokens`: the final norm and the vocabulary
/// projection of the rows `head` asks for, and what follows on the GPU. Returns the regions
/// (buffer, bytes) that hold its result.
pub(crate) fn record_head<'a>(
    rec: &mut Recorder<'a>,
    model: &'a Model,
    act: &'a Activations,
    n_tokens: u32,
    head: Head,
) -> Vec<(&'a wgpu::Buffer, u64)> {
    let c = &model.config;
    let n_vocab = c.n_vocab as u32;
    let logits = MatrixOutput::rows(&act.logits, n_vocab);
    let last_normed = norm_of_x(act, c, &model.output_norm, n_tokens - 1);
    match head {
        Head::None => Vec::new(),
        Head::Logits { first, rows } => {
            let normed = norm_of_x(act, c, &model.output_norm, first);
            rec.matmul(model.output(), normed, rows, logits);
            vec![(&act.logits, (rows * n_vocab * 4) as u64)]
        }
        Head::Argmax { masked } => {
            rec.matmul(model.output(), last_normed, 1, logits);
            if masked {
                rec.mask(&act.logits, n_vocab, &act.mask);
            }
            rec.argmax(&act.logits, n_vocab, &act.argmax);
            vec![(&act.argmax, 4)]
        }
        Head::Candidates {
            n_entries,
            penalties,
            masked,
        } => {
            rec.matmul(model.output(), last_normed, 1, logits);
            rec.penalize(&act.logits, &act.penalties, n_entries, penalties);
            if masked {
                rec.mask(&act.logits, n_vocab, &act.mask);
            }
            let (values, ids) = rec.top_k(&act.logits, n_vocab, &act.top_k);
            vec![(values, TOP_K as u64 * 4), (ids, TOP_K as u64 * 4)]
        }
    }
}
