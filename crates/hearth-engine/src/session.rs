//! A conversation on the GPU: the tokens seen so far, their keys and values (the KV cache,
//! grown as the conversation does), and the buffers its forward passes run through. Each call
//! runs new tokens through the model in micro-batches, one submission each, and reads back
//! what the caller wants.

use crate::error::EngineError;
use crate::forward::{Activations, Head, LayerKv, Step, record_head, record_layers};
use crate::gpu::GpuBuffer;
use crate::kernels::{Positions, Recorder, SubmitCache, TOP_K, X_WINDOW_BYTES};
use crate::model::Model;
use crate::plan::{
    ActivationSizes, MAX_PENALTY_ENTRIES, MemoryPlan, PlanInputs, check_context, layer_kv_rows,
    logit_chunk_rows, plan_for,
};
use crate::sampling::SamplingParams;
use crate::weights::GpuVector;
use hearth_text::TokenMask;
use std::sync::Arc;

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
}

/// Where a run's tokens come from.
#[derive(Clone, Copy)]
pub(crate) enum Feed<'t> {
    Host(&'t [u32]),
    /// The one token the previous greedy step left in the argmax buffer, never read back
    /// first (decode.rs).
    PreviousArgmax,
}

/// History entry of a token the GPU fed itself and the host has not read back yet.
pub(crate) const UNREAD: u32 = u32::MAX;

impl<'t> Feed<'t> {
    /// The tokens as the history records them.
    fn tokens(self) -> &'t [u32] {
        match self {
            Feed::Host(tokens) => tokens,
            Feed::PreviousArgmax => &[UNREAD],
        }
    }
}

/// Every layer's keys and values for the first `capacity` positions.
struct KvCache {
    layers: Vec<LayerKv>,
    capacity: usize,
}

/// A conversation: the tokens seen so far and their keys and values.
pub struct Session {
    model: Arc<Model>,
    /// The window and micro-batch the session was made for, and what they take.
    plan: MemoryPlan,
    /// Tokens whose keys and values are in the cache (`UNREAD` where not read back yet).
    history: Vec<u32>,
    /// The most positions the cache held since it was last emptied (what a sliding-window
    /// layer's ring may have overwritten).
    kv_written: usize,
    kv: KvCache,
    act: Activations,
    /// Dispatch parameters and bind groups kept between forward passes.
    submit_cache: SubmitCache,
    /// LongRoPE's factors chosen for this session's window, as llama.cpp does (ones without
    /// LongRoPE).
    use_long_factors: bool,
    /// Rows of logits read back at a time when every position's are wanted.
    logit_chunk_rows: usize,
    /// Tokens of the micro-batch run last, whose rows a head reads.
    last_batch: u32,
}

impl Session {
    /// A session with a context window of `ctx` tokens (if `None`, the model's trained window,
    /// as much of it as the device can bind).
    pub async fn new(model: Arc<Model>, ctx: Option<usize>) -> Result<Self, EngineError> {
        let plan = plan_for(&Self::plan_inputs(&model), ctx, None)?;
        Self::from_plan(model, &plan).await
    }

    /// A session with the window and micro-batch of `plan` (from `plan::plan` for this model
    /// on this device, within a memory budget).
    pub async fn from_plan(model: Arc<Model>, plan: &MemoryPlan) -> Result<Self, EngineError> {
        let c = &model.config;
        let inputs = Self::plan_inputs(&model);
        check_context(
            c,
            plan.ctx,
            inputs.choice.tuning().kv_format.value_bytes(),
            inputs.binding_limit,
        )?;
        let pad = if inputs.choice.wants_uniform_inputs() {
            X_WINDOW_BYTES
        } else {
            0
        };
        let sizes = ActivationSizes::new(c, plan.ctx, plan.ubatch, pad);
        let act = Activations::new(&model, &sizes).await?;
        let mut session = Session {
            use_long_factors: c.uses_long_rope_factors(plan.ctx),
            logit_chunk_rows: logit_chunk_rows(c, inputs.binding_limit, plan.ubatch),
            model,
            plan: *plan,
            history: Vec::new(),
            kv_written: 0,
            kv: KvCache {
                layers: Vec::new(),
                capacity: 0,
            },
            last_batch: 0,
            act,
            submit_cache: SubmitCache::default(),
        };
        session.grow_kv(KV_INITIAL_TOKENS.min(plan.ctx)).await?;
        Ok(session)
    }

    /// What the memory plan of a session of `model` is made from.
    fn plan_inputs(model: &Model) -> PlanInputs<'_> {
        PlanInputs {
            config: &model.config,
            choice: model.kernels.choice(),
            binding_limit: model.gpu.max_binding_bytes(),
            weights: model.weight_gpu_bytes(),
            weights_at_q4_k_m: None,
        }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    pub fn context_window(&self) -> usize {
        self.plan.ctx
    }

    /// The window and micro-batch the session was made for, and the memory they take.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// Tokens in the KV cache.
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Forgets everything after the first `len` tokens (their cache entries are overwritten).
    pub fn truncate(&mut self, len: usize) {
        if self.rings_keep(len) {
            self.history.truncate(len);
        } else {
            self.history.clear();
            self.kv_written = 0;
        }
    }

    /// Whether every sliding-window layer's ring still holds the window before position
    /// `len`: the positions written after it overwrote the rows of those `rows` before them.
    fn rings_keep(&self, len: usize) -> bool {
        let c = &self.model.config;
        (0..c.n_layer).all(|il| {
            let rows = layer_kv_rows(c, il, self.plan.ctx, self.plan.ubatch);
            match c.layer_attention(il).window {
                Some(window) if rows < self.plan.ctx => {
                    self.kv_written <= rows + (len + 1).saturating_sub(window)
                }
                _ => true,
            }
        })
    }

    /// GPU bytes of the KV cache as allocated now.
    pub fn kv_bytes(&self) -> u64 {
        self.kv.layers.iter().map(|l| l.k.size() + l.v.size()).sum()
    }

    /// Bind groups kept for reuse by the next forward passes.
    pub fn cached_bind_groups(&self) -> usize {
        self.submit_cache.cached_bind_groups()
    }

    /// GPU bytes of the activation buffers.
    pub fn activation_bytes(&self) -> u64 {
        self.act.bytes()
    }

    /// Reads every position's logits back `rows` rows at a time (at least one): fewer rows
    /// hold less GPU memory and take more submissions.
    pub fn set_logit_chunk_rows(&mut self, rows: usize) {
        self.logit_chunk_rows = rows.clamp(1, self.plan.ubatch);
    }

    /// Grows every layer's cache to hold `tokens` positions (a sliding-window layer's up to
    /// its ring, `layer_kv_rows`), keeping what it holds. One buffer at a time, so that beside
    /// the grown cache only one old buffer is ever held.
    async fn grow_kv(&mut self, tokens: usize) -> Result<(), EngineError> {
        if tokens <= self.kv.capacity {
            return Ok(());
        }
        let capacity = tokens.max(self.kv.capacity * 2).min(self.plan.ctx);
        let gpu = self.model.gpu.clone();
        let kv_format = self.model.kernels.choice().tuning().kv_format;
        let row_bytes = (self.model.config.kv_dim() * kv_format.value_bytes()) as u64;
        let none = wgpu::BufferUsages::empty();
        // Cached bind groups hold the old caches: dropped first, each old buffer is freed once
        // its copy is done.
        self.submit_cache.clear();
        // A layer grows only before its ring wraps: every position written so far is in the
        // row of its own number, and stays there.
        let used = self.history.len() as u64 * row_bytes;
        let grown = async |old: Option<&GpuBuffer>, rows: usize, label: String| {
            let new = gpu
                .storage_buffer(&label, rows as u64 * row_bytes, none)
                .await?;
            if let Some(old) = old
                && used > 0
            {
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                encoder.copy_buffer_to_buffer(old, 0, &new, 0, used);
                gpu.queue.submit([encoder.finish()]);
            }
            Ok::<_, EngineError>(new)
        };
        for i in 0..self.model.config.n_layer {
            let rows = capacity.min(layer_kv_rows(
                &self.model.config,
                i,
                self.plan.ctx,
                self.plan.ubatch,
            ));
            match self.kv.layers.get_mut(i) {
                Some(layer) if layer.rows >= rows => {}
                Some(layer) => {
                    layer.k = grown(Some(&layer.k), rows, format!("k cache {i}")).await?;
                    layer.v = grown(Some(&layer.v), rows, format!("v cache {i}")).await?;
                    layer.rows = rows;
                }
                None => {
                    let k = grown(None, rows, format!("k cache {i}")).await?;
                    let v = grown(None, rows, format!("v cache {i}")).await?;
                    self.kv.layers.push(LayerKv { k, v, rows });
                }
            }
        }
        self.kv.capacity = capacity;
        Ok(())
    }

    /// Runs `tokens` through the model after the tokens already in the cache.
    pub async fn forward(&mut self, tokens: &[u32], want: Want<'_>) -> Result<Output, EngineError> {
        let bytes = self.run(Feed::Host(tokens), Some(want), None).await?.1;
        Ok(self.output(want, bytes))
    }

    /// What `want` read back, as the caller takes it.
    fn output(&self, want: Want<'_>, bytes: Vec<u8>) -> Output {
        match want {
            Want::AllLogits => Output::Logits(bytemuck::pod_collect_to_vec(&bytes)),
            Want::Argmax => {
                Output::Token(u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")))
            }
            Want::Candidates(_) => {
                let k = TOP_K as usize;
                let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes[..4 * k]);
                let ids: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes[4 * k..8 * k]);
                let n_vocab = self.model.config.n_vocab;
                let valid = |&(id, _): &(u32, f32)| (id as usize) < n_vocab;
                Output::Candidates(ids.into_iter().zip(values).filter(valid).collect())
            }
        }
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

    /// Feeds `tokens` and returns the best next-token candidates under `sampling`'s penalties
    /// and bias, best first.
    pub async fn next_candidates(
        &mut self,
        tokens: &[u32],
        sampling: &SamplingParams,
    ) -> Result<Vec<(u32, f32)>, EngineError> {
        match self.forward(tokens, Want::Candidates(sampling)).await? {
            Output::Candidates(c) => Ok(c),
            _ => unreachable!("Candidates returns candidates"),
        }
    }

    /// Feeds `feed` and submits the greedy step without waiting for it: the same submission
    /// copies its token into `token_slot` (a 4-byte read-back buffer).
    pub(crate) async fn submit_greedy(
        &mut self,
        feed: Feed<'_>,
        token_slot: &wgpu::Buffer,
    ) -> Result<wgpu::SubmissionIndex, EngineError> {
        Ok(self
            .run(feed, Some(Want::Argmax), Some(token_slot))
            .await?
            .0)
    }

    /// Runs `tokens` through the layers, after the tokens already in the cache, and submits
    /// without waiting: `head` then computes what comes after them (or, where nothing needs
    /// choosing, the next tokens are fed straight away). Structured output works this way,
    /// so that the next step's token mask is computed while the GPU runs the layers.
    pub async fn feed(&mut self, tokens: &[u32]) -> Result<(), EngineError> {
        self.run(Feed::Host(tokens), None, None).await.map(|_| ())
    }

    /// The next token after the tokens fed last (`feed`): `want` (`Argmax` or `Candidates`)
    /// among the tokens `mask` allows.
    pub async fn head(
        &mut self,
        want: Want<'_>,
        mask: Option<&TokenMask>,
    ) -> Result<Output, EngineError> {
        if self.last_batch == 0 {
            return Err(EngineError::Unsupported(
                "nothing was fed before the head".into(),
            ));
        }
        if let Some(mask) = mask {
            let gpu = &self.model.gpu;
            gpu.queue
                .write_buffer(&self.act.mask, 0, bytemuck::cast_slice(&mask.words));
        }
        let masked = mask.is_some();
        let head = match want {
            Want::Argmax => Head::Argmax { masked },
            Want::Candidates(sampling) => self.upload_penalties(&[], sampling, masked)?,
            Want::AllLogits => {
                return Err(EngineError::Unsupported(
                    "every position's logits come from forward, not from a head".into(),
                ));
            }
        };
        let (_, bytes) = self.head_only(self.last_batch, head).await?;
        Ok(self.output(want, bytes))
    }

    /// Writes a token the GPU fed itself into the history, once it is read back.
    pub(crate) fn record_read_token(&mut self, position: usize, token: u32) {
        if self.history.get(position) == Some(&UNREAD) {
            self.history[position] = token;
        }
    }

    /// Runs `feed` in micro-batches after the cached tokens; the last computes `want` (with
    /// `AllLogits`, every one). Results are read back (the bytes), or with `token_slot`
    /// (greedy only) copied there and not waited for. Returns the last submission and the
    /// bytes read.
    async fn run(
        &mut self,
        feed: Feed<'_>,
        want: Option<Want<'_>>,
        token_slot: Option<&wgpu::Buffer>,
    ) -> Result<(wgpu::SubmissionIndex, Vec<u8>), EngineError> {
        let tokens = feed.tokens();
        let c = &self.model.config;
        if tokens.is_empty() {
            return Err(EngineError::Unsupported(
                "nothing to run: no tokens were given".into(),
            ));
        }
        let needed = self.history.len() + tokens.len();
        if needed > self.plan.ctx {
            return Err(EngineError::ContextFull {
                needed,
                ctx: self.plan.ctx,
            });
        }
        if let Feed::Host(tokens) = feed
            && let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.n_vocab)
        {
            return Err(EngineError::BadToken {
                id: bad,
                n_vocab: c.n_vocab,
            });
        }
        if matches!(
            (feed, want),
            (Feed::PreviousArgmax, Some(Want::Candidates(_)))
        ) {
            return Err(EngineError::Unsupported(
                "sampling needs the fed token on the host; only greedy steps are fed on the GPU"
                    .into(),
            ));
        }
        self.grow_kv(needed).await?;
        if matches!(want, Some(Want::AllLogits)) {
            let rows = self.logit_chunk_rows.min(tokens.len());
            let n_vocab = self.model.config.n_vocab;
            if self
                .act
                .reserve_logit_rows(&self.model.gpu, n_vocab, rows)
                .await?
            {
                self.submit_cache.clear();
            }
        }

        let ubatch = self.act.sizes.rows;
        let mut bytes = Vec::new();
        let mut submission = None;
        for (i, batch) in tokens.chunks(ubatch).enumerate() {
            let last = (i + 1) * ubatch >= tokens.len();
            let n = batch.len() as u32;
            let head = match (want, last) {
                (Some(Want::AllLogits), _) => Head::Logits {
                    first: 0,
                    rows: n.min(self.logit_chunk_rows as u32),
                },
                (None, _) | (_, false) => Head::None,
                (Some(Want::Argmax), true) => Head::Argmax { masked: false },
                (Some(Want::Candidates(sampling)), true) => {
                    self.upload_penalties(batch, sampling, false)?
                }
            };
            let batch_feed = match feed {
                Feed::Host(_) => Feed::Host(batch),
                Feed::PreviousArgmax => feed,
            };
            let slot = token_slot.filter(|_| last);
            let (index, read) = self.forward_ubatch(batch_feed, head, slot).await?;
            bytes.extend(read);
            submission = Some(index);
            if let Head::Logits { rows: done, .. } = head {
                // The rest of the micro-batch's logits, a chunk at a time through one buffer.
                for first in (done..n).step_by(self.logit_chunk_rows) {
                    let rows = (n - first).min(self.logit_chunk_rows as u32);
                    let (index, read) = self.head_only(n, Head::Logits { first, rows }).await?;
                    bytes.extend(read);
                    submission = Some(index);
                }
            }
        }
        Ok((submission.expect("at least one micro-batch"), bytes))
    }

    /// Writes the sampler's penalty and bias records for the conversation so far plus `fed`
    /// into the penalties buffer, for the head to apply.
    fn upload_penalties(
        &self,
        fed: &[u32],
        sampling: &SamplingParams,
        masked: bool,
    ) -> Result<Head, EngineError> {
        let window: Vec<u32> = self.history.iter().chain(fed).copied().collect();
        let entries = sampling.penalty_entries(&window, self.model.config.n_vocab);
        if entries.len() > MAX_PENALTY_ENTRIES {
            return Err(EngineError::Unsupported(format!(
                "{} penalized or biased tokens; at most {MAX_PENALTY_ENTRIES} are supported",
                entries.len()
            )));
        }
        self.model
            .gpu
            .queue
            .write_buffer(&self.act.penalties, 0, bytemuck::cast_slice(&entries));
        let penalties = [
            sampling.repeat_penalty,
            sampling.frequency_penalty,
            sampling.presence_penalty,
        ];
        Ok(Head::Candidates {
            n_entries: entries.len() as u32,
            penalties,
            masked,
        })
    }

    /// One micro-batch: the whole transformer, top to bottom, and `head`, in one submission;
    /// then its result read back (or copied to `token_slot`).
    async fn forward_ubatch(
        &mut self,
        feed: Feed<'_>,
        head: Head,
        token_slot: Option<&wgpu::Buffer>,
    ) -> Result<(wgpu::SubmissionIndex, Vec<u8>), EngineError> {
        let model = self.model.clone();
        let gpu = &model.gpu;
        let act = &self.act;
        let tokens = feed.tokens();
        let token_ids = match feed {
            Feed::Host(tokens) => {
                gpu.queue
                    .write_buffer(&act.tokens, 0, bytemuck::cast_slice(tokens));
                &act.tokens
            }
            Feed::PreviousArgmax => &act.argmax,
        };
        let step = Step {
            token_ids,
            at: Positions {
                pos0: self.history.len() as u32,
                n_tokens: tokens.len() as u32,
            },
            rope_factors: rope_factors(&model, self.use_long_factors),
        };
        let mut rec = Recorder::new(gpu, &model.kernels);
        record_layers(&mut rec, &model, act, &self.kv.layers, &step);
        let result = record_head(&mut rec, &model, act, step.at.n_tokens, head);
        let read: u64 = if token_slot.is_some() {
            0
        } else {
            result.iter().map(|r| r.1).sum()
        };
        let submission = rec.submit(gpu, &mut self.submit_cache, |encoder| match token_slot {
            Some(slot) => encoder.copy_buffer_to_buffer(result[0].0, 0, slot, 0, 4),
            None => copy_to_readback(encoder, &result, &act.readback),
        });
        self.history.extend_from_slice(tokens);
        self.kv_written = self.kv_written.max(self.history.len());
        self.last_batch = tokens.len() as u32;
        if read == 0 {
            gpu.check()?;
            return Ok((submission, Vec::new()));
        }
        Ok((submission, gpu.read_buffer(&self.act.readback, read).await?))
    }

    /// The head alone, over the micro-batch of `n_tokens` run last (more of its logits).
    async fn head_only(
        &mut self,
        n_tokens: u32,
        head: Head,
    ) -> Result<(wgpu::SubmissionIndex, Vec<u8>), EngineError> {
        let model = self.model.clone();
        let gpu = &model.gpu;
        let act = &self.act;
        let mut rec = Recorder::new(gpu, &model.kernels);
        let result = record_head(&mut rec, &model, act, n_tokens, head);
        let read: u64 = result.iter().map(|r| r.1).sum();
        let submission = rec.submit(gpu, &mut self.submit_cache, |encoder| {
            copy_to_readback(encoder, &result, &act.readback)
        });
        Ok((submission, gpu.read_buffer(&self.act.readback, read).await?))
    }
}

/// Copies the head's result regions, one after another, into the read-back buffer.
fn copy_to_readback(
    encoder: &mut wgpu::CommandEncoder,
    result: &[(&wgpu::Buffer, u64)],
    readback: &wgpu::Buffer,
) {
    let mut at = 0;
    for &(buffer, bytes) in result {
        encoder.copy_buffer_to_buffer(buffer, 0, readback, at, bytes);
        at += bytes;
    }
}

/// LongRoPE's frequency factors for a session (all ones without LongRoPE).
fn rope_factors(model: &Model, long: bool) -> &GpuVector {
    let chosen = if long {
        &model.rope_factors_long
    } else {
        &model.rope_factors_short
    };
    chosen.as_ref().unwrap_or(&model.rope_factors_default)
}
