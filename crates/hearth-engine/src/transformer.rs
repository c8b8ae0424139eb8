//! The forward pass of a decoder-only transformer (Phi-3 family; the architecture's
//! differences come from `hearth_model::Config`, not from branches here), and the session
//! that owns a conversation's KV cache.
//!
//! One call of [`Session::forward`] records every dispatch of a micro-batch of tokens into
//! one command submission; decoding a token is one submission and a 4-byte read-back.

use crate::kernels::{attention_partials_len, MatrixInput, Recorder, RmsNorm, RopeShape, SubmitCache, TOP_K, TOP_K_CHUNK, X_WINDOW_BYTES};
use crate::sampling::SamplingParams;
use crate::model::Model;
use crate::weights::GpuVector;
use crate::EngineError;
use std::sync::Arc;

/// Prompt tokens processed per submission.
const MAX_UBATCH: usize = 512;
/// The KV cache starts this small and doubles as the conversation grows.
const KV_INITIAL_TOKENS: usize = 256;

/// What a forward pass returns besides filling the KV cache.
#[derive(Clone, Copy, Debug)]
pub enum Want<'p> {
    /// Logits of every position, read back to the host ([n_tokens, n_vocab]).
    AllLogits,
    /// Only the greedy choice after the last position, picked on the GPU.
    Argmax,
    /// The best candidates after the last position, after the sampler's penalties and logit
    /// bias were applied on the GPU: `CANDIDATES` (token, logit) pairs, best first.
    Candidates(&'p SamplingParams),
}

pub enum Output {
    Logits(Vec<f32>),
    Token(u32),
    Candidates(Vec<(u32, f32)>),
    /// A greedy step submitted without waiting for its token (`Session::submit_greedy`).
    Pending(PendingToken),
}

/// Where a micro-batch's tokens come from.
#[derive(Clone, Copy)]
enum Feed<'t> {
    Host(&'t [u32]),
    /// The one token the previous greedy step left in the argmax buffer, never read back first.
    PreviousArgmax,
}

impl<'t> Feed<'t> {
    /// The tokens as the history records them.
    fn tokens(self) -> &'t [u32] {
        match self {
            Feed::Host(tokens) => tokens,
            Feed::PreviousArgmax => &[NOT_READ_YET],
        }
    }
}

/// A greedy step on the GPU whose token has not been read back yet: `Session::read_token`
/// waits for it. Greedy decoding queues the step that feeds a token before reading the token
/// back, so the GPU never idles through a read-back's round trip (a fence and a map; in a
/// browser an IPC hop and a task) or the host's recording of the next step.
#[must_use = "a pending token must be read back with Session::read_token"]
pub struct PendingToken {
    slot: usize,
    submission: wgpu::SubmissionIndex,
    /// The history position of the token this step produces, where the next step fed on the
    /// GPU left a placeholder.
    position: usize,
}

/// History entry of a token fed on the GPU and not read back yet.
const NOT_READ_YET: u32 = u32::MAX;

/// A 4-byte read-back buffer for greedy tokens and its map request in flight, if any.
struct TokenSlot {
    buffer: wgpu::Buffer,
    mapping: Option<futures_channel::oneshot::Receiver<Result<(), wgpu::BufferAsyncError>>>,
}

/// Penalty/bias records the GPU can take per sampled token.
const MAX_PENALTY_ENTRIES: usize = 8192;

/// Activation buffers for one micro-batch of up to `rows` tokens.
struct Activations {
    rows: usize,
    tokens: wgpu::Buffer,
    x: wgpu::Buffer,
    normed: wgpu::Buffer,
    qkv: wgpu::Buffer,
    attn: wgpu::Buffer,
    /// Split-decoding partial results of attention (see `Recorder::attention`).
    attn_partials: wgpu::Buffer,
    gate_up: wgpu::Buffer,
    ffn_act: wgpu::Buffer,
    logits: wgpu::Buffer,
    logits_rows: usize,
    argmax: wgpu::Buffer,
    penalties: wgpu::Buffer,
    /// Ping-pong (values, token ids) buffers of the top-k rounds.
    top_k: [(wgpu::Buffer, wgpu::Buffer); 2],
    readback: wgpu::Buffer,
}

struct LayerCache {
    k: wgpu::Buffer,
    v: wgpu::Buffer,
}

/// A conversation: the tokens seen so far and their keys and values.
pub struct Session {
    model: Arc<Model>,
    ctx: usize,
    /// Tokens whose keys and values are in the cache.
    history: Vec<u32>,
    kv: Vec<LayerCache>,
    kv_capacity: usize,
    act: Activations,
    /// Dispatch parameters and bind groups kept between forward passes.
    submit_cache: SubmitCache,
    use_long_factors: bool,
    /// Two, so that one step's token can be read while the next step is queued.
    token_slots: [TokenSlot; 2],
    next_slot: usize,
}

impl Session {
    /// A session with a context window of `ctx` tokens (the model's trained window if `None`).
    /// Whether LongRoPE uses its long factors is fixed here, from `ctx`, as llama.cpp does.
    pub async fn new(model: Arc<Model>, ctx: Option<usize>) -> Result<Self, EngineError> {
        let c = &model.config;
        let ctx = ctx.unwrap_or(c.context_length);
        if ctx == 0 {
            return Err(EngineError::Unsupported("the context window must hold at least one token".into()));
        }
        let gpu = &model.gpu;
        let limit = gpu.max_binding_bytes();
        crate::plan::check_context(c, ctx, model.kernels.kv_value_bytes(), limit)?;
        let widest = [c.qkv_dim(), 2 * c.n_ff, c.n_embd].into_iter().max().unwrap_or(1) as u64 * 4;
        let rows = (limit / widest).min(MAX_UBATCH as u64).min(ctx as u64) as usize;
        let logits_rows = (limit / (c.n_vocab as u64 * 4)).min(rows as u64).max(1) as usize;
        let act = Self::activations(&model, rows, logits_rows, ctx).await?;
        let use_long_factors = c.uses_long_rope_factors(ctx);
        let token_slot = || TokenSlot {
            buffer: gpu.device.create_buffer(&wgpu::BufferDescriptor { label: Some("token read-back"), size: 16, usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false }),
            mapping: None,
        };
        let token_slots = [token_slot(), token_slot()];
        let mut session = Session { model, ctx, history: Vec::new(), kv: Vec::new(), kv_capacity: 0, act, submit_cache: SubmitCache::default(), use_long_factors, token_slots, next_slot: 0 };
        session.grow_kv(KV_INITIAL_TOKENS.min(ctx)).await?;
        Ok(session)
    }

    async fn activations(model: &Model, rows: usize, logits_rows: usize, ctx: usize) -> Result<Activations, EngineError> {
        let (c, gpu) = (&model.config, &model.gpu);
        let f32s = |n: usize| (n * 4) as u64;
        let none = wgpu::BufferUsages::empty();
        // Matrix inputs (normed, attention out, ffn act): CPU adapters read them as uniform
        // windows, which need the usage and room for a whole window past the last row.
        let (input_usage, input_pad) = if model.kernels.wants_uniform_inputs() { (wgpu::BufferUsages::UNIFORM, X_WINDOW_BYTES) } else { (none, 0) };
        Ok(Activations {
            rows,
            tokens: gpu.storage_buffer("tokens", f32s(rows), none).await?,
            x: gpu.storage_buffer("residual", f32s(rows * c.n_embd), none).await?,
            normed: gpu.storage_buffer("normed", f32s(rows * c.n_embd) + input_pad, input_usage).await?,
            qkv: gpu.storage_buffer("qkv", f32s(rows * c.qkv_dim()), none).await?,
            attn: gpu.storage_buffer("attention out", f32s(rows * c.n_embd) + input_pad, input_usage).await?,
            attn_partials: gpu.storage_buffer("attention partials", f32s(attention_partials_len(model.heads(), ctx)), none).await?,
            gate_up: gpu.storage_buffer("gate|up", f32s(rows * 2 * c.n_ff), none).await?,
            ffn_act: gpu.storage_buffer("ffn act", f32s(rows * c.n_ff) + input_pad, input_usage).await?,
            logits: gpu.storage_buffer("logits", f32s(logits_rows * c.n_vocab), none).await?,
            logits_rows,
            argmax: gpu.storage_buffer("argmax", 4, none).await?,
            penalties: gpu.storage_buffer("penalties", (MAX_PENALTY_ENTRIES * 16) as u64, none).await?,
            top_k: {
                let n = (c.n_vocab as u64).div_ceil(TOP_K_CHUNK as u64) * TOP_K as u64 * 4;
                [
                    (gpu.storage_buffer("top-k values", n, none).await?, gpu.storage_buffer("top-k ids", n, none).await?),
                    (gpu.storage_buffer("top-k values", n, none).await?, gpu.storage_buffer("top-k ids", n, none).await?),
                ]
            },
            readback: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: f32s(logits_rows * c.n_vocab).max(16),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    pub fn context_window(&self) -> usize {
        self.ctx
    }

    /// Tokens in the KV cache.
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Forgets everything after the first `len` tokens (their cache entries are overwritten).
    pub fn truncate(&mut self, len: usize) {
        self.history.truncate(len);
    }

    /// GPU bytes of the KV cache as allocated now.
    pub fn kv_bytes(&self) -> u64 {
        self.kv.iter().map(|l| l.k.size() + l.v.size()).sum()
    }

    /// Bind groups kept for reuse by the next forward passes.
    pub fn cached_bind_groups(&self) -> usize {
        self.submit_cache.cached_bind_groups()
    }

    /// GPU bytes of the activation buffers.
    pub fn activation_bytes(&self) -> u64 {
        let a = &self.act;
        let top_k = a.top_k.iter().map(|(v, i)| v.size() + i.size()).sum::<u64>();
        [&a.tokens, &a.x, &a.normed, &a.qkv, &a.attn, &a.attn_partials, &a.gate_up, &a.ffn_act, &a.logits, &a.argmax, &a.penalties, &a.readback].iter().map(|b| b.size()).sum::<u64>() + top_k
    }

    /// Grows every layer's cache to hold `tokens` positions, keeping what it holds.
    async fn grow_kv(&mut self, tokens: usize) -> Result<(), EngineError> {
        if tokens <= self.kv_capacity {
            return Ok(());
        }
        let capacity = tokens.max(self.kv_capacity * 2).min(self.ctx);
        let gpu = self.model.gpu.clone();
        let row_bytes = (self.model.config.kv_dim() * self.model.kernels.kv_value_bytes()) as u64;
        let bytes = capacity as u64 * row_bytes;
        let mut layers = Vec::with_capacity(self.kv.len());
        for i in 0..self.model.config.n_layer {
            let k = gpu.storage_buffer(&format!("k cache {i}"), bytes, wgpu::BufferUsages::empty()).await?;
            let v = gpu.storage_buffer(&format!("v cache {i}"), bytes, wgpu::BufferUsages::empty()).await?;
            layers.push(LayerCache { k, v });
        }
        if !self.history.is_empty() {
            let used = self.history.len() as u64 * row_bytes;
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            for (old, new) in self.kv.iter().zip(&layers) {
                encoder.copy_buffer_to_buffer(&old.k, 0, &new.k, 0, used);
                encoder.copy_buffer_to_buffer(&old.v, 0, &new.v, 0, used);
            }
            gpu.queue.submit([encoder.finish()]);
        }
        self.kv = layers;
        self.kv_capacity = capacity;
        // Cached bind groups still hold the old caches; dropping them frees that memory.
        self.submit_cache.clear();
        Ok(())
    }

    /// LongRoPE's frequency factors for this session (all ones without LongRoPE).
    fn rope_factors(model: &Model, long: bool) -> &GpuVector {
        let chosen = if long { &model.rope_factors_long } else { &model.rope_factors_short };
        chosen.as_ref().unwrap_or(&model.rope_factors_default)
    }

    /// Runs `tokens` through the model after the tokens already in the cache.
    pub async fn forward(&mut self, tokens: &[u32], want: Want<'_>) -> Result<Output, EngineError> {
        self.run(Feed::Host(tokens), want, false).await
    }

    /// `forward` from either source; with `pipelined` (and `Want::Argmax`) the last
    /// micro-batch returns `Output::Pending` instead of waiting for its token.
    async fn run(&mut self, feed: Feed<'_>, want: Want<'_>, pipelined: bool) -> Result<Output, EngineError> {
        let c = &self.model.config;
        let tokens = feed.tokens();
        if tokens.is_empty() {
            return Err(EngineError::Unsupported("nothing to run: no tokens were given".into()));
        }
        let needed = self.history.len() + tokens.len();
        if needed > self.ctx {
            return Err(EngineError::ContextFull { needed, ctx: self.ctx });
        }
        if let Feed::Host(tokens) = feed
            && let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.n_vocab)
        {
            return Err(EngineError::BadToken { id: bad, n_vocab: c.n_vocab });
        }
        self.grow_kv(needed).await?;

        let ubatch = match want {
            Want::AllLogits => self.act.rows.min(self.act.logits_rows),
            Want::Argmax | Want::Candidates(_) => self.act.rows,
        };
        let mut logits = Vec::new();
        let mut last_output = None;
        for (i, batch) in tokens.chunks(ubatch).enumerate() {
            let last = (i + 1) * ubatch >= tokens.len();
            let batch_want = if matches!(want, Want::AllLogits) || last { Some(want) } else { None };
            let batch_feed = if matches!(feed, Feed::Host(_)) { Feed::Host(batch) } else { feed };
            match self.forward_ubatch(batch_feed, batch_want, pipelined && last).await? {
                Some(Output::Logits(l)) => logits.extend(l),
                other => last_output = other,
            }
        }
        match want {
            Want::AllLogits => Ok(Output::Logits(logits)),
            _ => last_output.ok_or_else(|| EngineError::Readback("the last micro-batch returned nothing".into())),
        }
    }

    /// One micro-batch: the whole transformer, top to bottom, in one submission.
    async fn forward_ubatch(&mut self, feed: Feed<'_>, want: Option<Want<'_>>, pipelined: bool) -> Result<Option<Output>, EngineError> {
        if pipelined {
            // The slot's last map request, if never awaited (an error cut a read short), must
            // end before the buffer is written again.
            self.settle_slot(self.next_slot).await;
        }
        let model = self.model.clone();
        let (c, gpu, a) = (&model.config, &model.gpu, &self.act);
        let tokens = feed.tokens();
        let n = tokens.len() as u32;
        let pos0 = self.history.len() as u32;
        let (d, qkv_dim, n_ff, n_vocab) = (c.n_embd as u32, c.qkv_dim() as u32, c.n_ff as u32, c.n_vocab as u32);
        let rope = RopeShape {
            n_head: c.n_head as u32,
            n_head_kv: c.n_head_kv as u32,
            head_dim: c.head_dim as u32,
            n_rot: c.n_rot as u32,
            qkv_stride: qkv_dim,
            neox: c.rope_style == hearth_model::RopeStyle::Neox,
            base: c.rope_base,
            freq_scale: c.rope_freq_scale,
            attn_factor: c.rope_attn_factor,
        };
        let token_ids = match feed {
            Feed::Host(tokens) => {
                gpu.queue.write_buffer(&a.tokens, 0, bytemuck::cast_slice(tokens));
                &a.tokens
            }
            Feed::PreviousArgmax => &a.argmax,
        };

        let rope_factors = Self::rope_factors(&model, self.use_long_factors);
        let mut rec = Recorder::new(gpu, &model.kernels);
        // RMSNorm of the residual rows from `row` on, as the input of the matrices after it
        // (fused into their kernels on GPUs; on CPU adapters it fills `normed`).
        let norm_of_x = |gain, row| MatrixInput::normed(&a.x, row, RmsNorm { gain, eps: c.rms_eps, scratch: &a.normed });
        // Token embeddings become the residual stream x.
        rec.embed(&model.token_embd, token_ids, n, &a.x);
        for (layer, cache) in model.layers.iter().zip(&self.kv) {
            // Attention block: x += Wo · attention(rope(Wqkv · norm(x)))
            let normed = rec.prepare_input(norm_of_x(&layer.attn_norm, 0), n, layer.qkv.iter().map(|p| &p.weight));
            for p in &layer.qkv {
                rec.matmul(&p.weight, normed, n, &a.qkv, qkv_dim, p.out_offset, false);
            }
            rec.rope_attention(&rope, rope_factors, pos0, n, &a.qkv, &cache.k, &cache.v, &a.attn, &a.attn_partials);
            rec.matmul(&layer.attn_output, MatrixInput::rows(&a.attn, 0), n, &a.x, d, 0, true);

            // Feed-forward block: x += Wdown · (silu(gate) * up), [gate | up] = Wgate_up · norm(x)
            rec.gated_ffn_input(&layer.ffn_gate_up, norm_of_x(&layer.ffn_norm, 0), n, n_ff, &a.gate_up, &a.ffn_act);
            rec.matmul(&layer.ffn_down, MatrixInput::rows(&a.ffn_act, 0), n, &a.x, d, 0, true);
        }
        // Head: final norm and the vocabulary projection, for every position or the last.
        let mut reads: Vec<(&wgpu::Buffer, u64)> = Vec::new();
        let last_normed = norm_of_x(&model.output_norm, n - 1);
        match want {
            None => {}
            Some(Want::AllLogits) => {
                rec.matmul(model.output(), norm_of_x(&model.output_norm, 0), n, &a.logits, n_vocab, 0, false);
                reads.push((&a.logits, (n * n_vocab * 4) as u64));
            }
            Some(Want::Argmax) => {
                rec.matmul(model.output(), last_normed, 1, &a.logits, n_vocab, 0, false);
                rec.argmax(&a.logits, n_vocab, &a.argmax);
                if !pipelined {
                    reads.push((&a.argmax, 4));
                }
            }
            Some(Want::Candidates(_)) if matches!(feed, Feed::PreviousArgmax) => {
                return Err(EngineError::Unsupported("sampling needs the fed token on the host; only greedy steps are fed on the GPU".into()));
            }
            Some(Want::Candidates(sampling)) => {
                rec.matmul(model.output(), last_normed, 1, &a.logits, n_vocab, 0, false);
                // Penalties look at the conversation including the tokens fed now.
                let window: Vec<u32> = self.history.iter().chain(tokens).copied().collect();
                let entries = sampling.penalty_entries(&window, c.n_vocab);
                if entries.len() > MAX_PENALTY_ENTRIES {
                    return Err(EngineError::Unsupported(format!("{} penalized or biased tokens; at most {MAX_PENALTY_ENTRIES} are supported", entries.len())));
                }
                gpu.queue.write_buffer(&a.penalties, 0, bytemuck::cast_slice(&entries));
                rec.penalize(&a.logits, &a.penalties, entries.len() as u32, sampling.repeat_penalty, sampling.frequency_penalty, sampling.presence_penalty);
                let (values, ids) = rec.top_k(&a.logits, n_vocab, &a.top_k);
                reads.push((values, TOP_K as u64 * 4));
                reads.push((ids, TOP_K as u64 * 4));
            }
        }
        let read_bytes: u64 = reads.iter().map(|r| r.1).sum();
        let token_slot = (pipelined && matches!(want, Some(Want::Argmax))).then_some(self.next_slot);
        let submission = rec.submit(gpu, &mut self.submit_cache, |encoder| {
            let mut at = 0;
            for (buffer, bytes) in reads {
                encoder.copy_buffer_to_buffer(buffer, 0, &a.readback, at, bytes);
                at += bytes;
            }
            if let Some(slot) = token_slot {
                encoder.copy_buffer_to_buffer(&a.argmax, 0, &self.token_slots[slot].buffer, 0, 4);
            }
        });
        self.history.extend_from_slice(tokens);
        if let Some(slot) = token_slot {
            // Asked for now, granted when the step is done: reading it waits for nothing else.
            let (tx, rx) = futures_channel::oneshot::channel();
            self.token_slots[slot].buffer.slice(..4).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
            self.token_slots[slot].mapping = Some(rx);
            self.next_slot = 1 - slot;
            return Ok(Some(Output::Pending(PendingToken { slot, submission, position: self.history.len() })));
        }
        if read_bytes == 0 {
            gpu.check()?;
            return Ok(None);
        }
        let bytes = gpu.read_buffer(&a.readback, read_bytes).await?;
        Ok(Some(match want {
            Some(Want::Argmax) => Output::Token(u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes read"))),
            Some(Want::Candidates(_)) => {
                let k = TOP_K as usize;
                let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes[..4 * k]);
                let ids: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes[4 * k..8 * k]);
                Output::Candidates(ids.into_iter().zip(values).filter(|&(id, _)| (id as usize) < c.n_vocab).collect())
            }
            _ => Output::Logits(bytemuck::pod_collect_to_vec(&bytes)),
        }))
    }

    /// Teacher-forced logits for `tokens`, appended to the conversation: [n_tokens, n_vocab].
    pub async fn logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>, EngineError> {
        match self.forward(tokens, Want::AllLogits).await? {
            Output::Logits(l) => Ok(l),
            _ => unreachable!("AllLogits returns logits"),
        }
    }

    /// Feeds `tokens` and returns the greedy next token.
    pub async fn next_greedy(&mut self, tokens: &[u32]) -> Result<u32, EngineError> {
        match self.forward(tokens, Want::Argmax).await? {
            Output::Token(t) => Ok(t),
            _ => unreachable!("Argmax returns a token"),
        }
    }

    /// Feeds `tokens` and submits the greedy step without waiting for its token.
    pub async fn submit_greedy(&mut self, tokens: &[u32]) -> Result<PendingToken, EngineError> {
        Self::pending(self.run(Feed::Host(tokens), Want::Argmax, true).await?)
    }

    /// Submits the greedy step that feeds `previous`'s token, straight from the GPU, before
    /// that token is read back. `previous` must be the last step submitted. Its token is in
    /// the history as soon as `read_token(previous)` returns it.
    pub async fn submit_greedy_after(&mut self, previous: &PendingToken) -> Result<PendingToken, EngineError> {
        if previous.position != self.history.len() {
            return Err(EngineError::Unsupported("a greedy step can only follow the last step submitted".into()));
        }
        Self::pending(self.run(Feed::PreviousArgmax, Want::Argmax, true).await?)
    }

    fn pending(output: Output) -> Result<PendingToken, EngineError> {
        match output {
            Output::Pending(p) => Ok(p),
            _ => unreachable!("a pipelined Argmax returns a pending token"),
        }
    }

    /// Waits for a pending step's token (only that step: later ones stay queued).
    pub async fn read_token(&mut self, pending: PendingToken) -> Result<u32, EngineError> {
        let gpu = self.model.gpu.clone();
        let slot = &mut self.token_slots[pending.slot];
        let mapping = slot.mapping.take().ok_or_else(|| EngineError::Readback("this token was read already".into()))?;
        // Native: block until that submission is done. Web: no effect; the browser maps it.
        let _ = gpu.device.poll(wgpu::PollType::Wait { submission_index: Some(pending.submission), timeout: None });
        let mapped = mapping.await.map_err(|_| EngineError::Readback("the GPU dropped the request".into()))?;
        gpu.check()?;
        mapped.map_err(|e| EngineError::Readback(e.to_string()))?;
        let token = {
            let bytes = slot.buffer.slice(..4).get_mapped_range().map_err(|e| EngineError::Readback(e.to_string()))?;
            u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes mapped"))
        };
        slot.buffer.unmap();
        if self.history.get(pending.position) == Some(&NOT_READ_YET) {
            self.history[pending.position] = token;
        }
        Ok(token)
    }

    /// Ends a slot's map request that nobody awaited, so the buffer can be written again.
    async fn settle_slot(&mut self, slot: usize) {
        if let Some(mapping) = self.token_slots[slot].mapping.take() {
            let _ = self.model.gpu.device.poll(wgpu::PollType::wait_indefinitely());
            if let Ok(Ok(())) = mapping.await {
                self.token_slots[slot].buffer.unmap();
            }
        }
    }

    /// Feeds `tokens`, then decodes `n` tokens greedily, as `generate` does: each step queued
    /// before the token it feeds is read back where the adapter queues ahead
    /// (`Gpu::queue_ahead`), one step at a time elsewhere. Returns the `n` tokens; the last
    /// one is not fed.
    pub async fn decode_greedy(&mut self, tokens: &[u32], n: usize) -> Result<Vec<u32>, EngineError> {
        let mut out = Vec::with_capacity(n);
        if n == 0 {
            return Ok(out);
        }
        if !self.model.gpu.queue_ahead() {
            out.push(self.next_greedy(tokens).await?);
            while out.len() < n {
                let last = out[out.len() - 1];
                out.push(self.next_greedy(&[last]).await?);
            }
            return Ok(out);
        }
        let mut pending = self.submit_greedy(tokens).await?;
        loop {
            let ahead = if out.len() + 1 < n { Some(self.submit_greedy_after(&pending).await?) } else { None };
            out.push(self.read_token(pending).await?);
            match ahead {
                Some(next) => pending = next,
                None => return Ok(out),
            }
        }
    }

    /// Feeds `tokens` and returns the best next-token candidates under `sampling`'s penalties
    /// and bias, best first.
    pub async fn next_candidates(&mut self, tokens: &[u32], sampling: &SamplingParams) -> Result<Vec<(u32, f32)>, EngineError> {
        match self.forward(tokens, Want::Candidates(sampling)).await? {
            Output::Candidates(c) => Ok(c),
            _ => unreachable!("Candidates returns candidates"),
        }
    }
}
