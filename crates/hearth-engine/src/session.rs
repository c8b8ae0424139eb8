//! A conversation on the GPU: the tokens seen so far, their keys and values (the KV cache,
//! grown as the conversation does), and the buffers its forward passes run through. Each call
//! runs new tokens through the model in micro-batches, one submission each, and reads back
//! what the caller wants.

use crate::error::EngineError;
use crate::forward::{Activations, Head, LayerKv, MAX_PENALTY_ENTRIES, Step, record_forward};
use crate::kernels::{Positions, Recorder, SubmitCache, TOP_K};
use crate::model::Model;
use crate::plan::{MAX_UBATCH, check_context};
use crate::sampling::SamplingParams;
use crate::weights::GpuVector;
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
    ctx: usize,
    /// Tokens whose keys and values are in the cache (`UNREAD` where not read back yet).
    history: Vec<u32>,
    kv: KvCache,
    act: Activations,
    /// Dispatch parameters and bind groups kept between forward passes.
    submit_cache: SubmitCache,
    /// LongRoPE's factors chosen for this session's window, as llama.cpp does (ones without
    /// LongRoPE).
    use_long_factors: bool,
}

impl Session {
    /// A session with a context window of `ctx` tokens (the model's trained window if `None`).
    pub async fn new(model: Arc<Model>, ctx: Option<usize>) -> Result<Self, EngineError> {
        let c = &model.config;
        let ctx = ctx.unwrap_or(c.context_length);
        if ctx == 0 {
            return Err(EngineError::Unsupported(
                "the context window must hold at least one token".into(),
            ));
        }
        let limit = model.gpu.max_binding_bytes();
        let kv_format = model.kernels.choice().tuning().kv_format;
        check_context(c, ctx, kv_format.value_bytes(), limit)?;
        let widest = [c.qkv_dim(), 2 * c.n_ff, c.n_embd]
            .into_iter()
            .max()
            .unwrap_or(1) as u64
            * 4;
        let rows = (limit / widest).min(MAX_UBATCH as u64).min(ctx as u64) as usize;
        let logits_rows = (limit / (c.n_vocab as u64 * 4)).min(rows as u64).max(1) as usize;
        let act = Activations::new(&model, rows, logits_rows, ctx).await?;
        let use_long_factors = c.uses_long_rope_factors(ctx);
        let kv = KvCache {
            layers: Vec::new(),
            capacity: 0,
        };
        let mut session = Session {
            model,
            ctx,
            history: Vec::new(),
            kv,
            act,
            submit_cache: SubmitCache::default(),
            use_long_factors,
        };
        session.grow_kv(KV_INITIAL_TOKENS.min(ctx)).await?;
        Ok(session)
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

    /// Grows every layer's cache to hold `tokens` positions, keeping what it holds.
    async fn grow_kv(&mut self, tokens: usize) -> Result<(), EngineError> {
        if tokens <= self.kv.capacity {
            return Ok(());
        }
        let capacity = tokens.max(self.kv.capacity * 2).min(self.ctx);
        let gpu = self.model.gpu.clone();
        let kv_format = self.model.kernels.choice().tuning().kv_format;
        let row_bytes = (self.model.config.kv_dim() * kv_format.value_bytes()) as u64;
        let bytes = capacity as u64 * row_bytes;
        let none = wgpu::BufferUsages::empty();
        let mut layers = Vec::with_capacity(self.model.config.n_layer);
        for i in 0..self.model.config.n_layer {
            let k = gpu
                .storage_buffer(&format!("k cache {i}"), bytes, none)
                .await?;
            let v = gpu
                .storage_buffer(&format!("v cache {i}"), bytes, none)
                .await?;
            layers.push(LayerKv { k, v });
        }
        if !self.history.is_empty() {
            let used = self.history.len() as u64 * row_bytes;
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            for (old, new) in self.kv.layers.iter().zip(&layers) {
                encoder.copy_buffer_to_buffer(&old.k, 0, &new.k, 0, used);
                encoder.copy_buffer_to_buffer(&old.v, 0, &new.v, 0, used);
            }
            gpu.queue.submit([encoder.finish()]);
        }
        self.kv = KvCache { layers, capacity };
        // Cached bind groups still hold the old caches; dropping them frees that memory.
        self.submit_cache.clear();
        Ok(())
    }

    /// Runs `tokens` through the model after the tokens already in the cache.
    pub async fn forward(&mut self, tokens: &[u32], want: Want<'_>) -> Result<Output, EngineError> {
        let bytes = self.run(Feed::Host(tokens), want, None).await?.1;
        Ok(match want {
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
        })
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
        Ok(self.run(feed, Want::Argmax, Some(token_slot)).await?.0)
    }

    /// Writes a token the GPU fed itself into the history, once it is read back.
    pub(crate) fn record_read_token(&mut self, position: usize, token: u32) {
        if self.history.get(position) == Some(&UNREAD) {
            self.history[position] = token;
        }
    }

    /// Runs `feed` in micro-batches after the cached tokens; the last computes `want`. Its
    /// result is read back (the bytes), or with `token_slot` (greedy only) copied there and
    /// not waited for. Returns the last submission and the bytes read.
    async fn run(
        &mut self,
        feed: Feed<'_>,
        want: Want<'_>,
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
        if needed > self.ctx {
            return Err(EngineError::ContextFull {
                needed,
                ctx: self.ctx,
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
        if matches!((feed, want), (Feed::PreviousArgmax, Want::Candidates(_))) {
            return Err(EngineError::Unsupported(
                "sampling needs the fed token on the host; only greedy steps are fed on the GPU"
                    .into(),
            ));
        }
        self.grow_kv(needed).await?;

        let ubatch = match want {
            Want::AllLogits => self.act.rows.min(self.act.logits_rows),
            Want::Argmax | Want::Candidates(_) => self.act.rows,
        };
        let mut bytes = Vec::new();
        let mut submission = None;
        for (i, batch) in tokens.chunks(ubatch).enumerate() {
            let last = (i + 1) * ubatch >= tokens.len();
            let head = match (want, last) {
                (Want::AllLogits, _) => Head::AllLogits,
                (_, false) => Head::None,
                (Want::Argmax, true) => Head::Argmax,
                (Want::Candidates(sampling), true) => self.upload_penalties(batch, sampling)?,
            };
            let batch_feed = match feed {
                Feed::Host(_) => Feed::Host(batch),
                Feed::PreviousArgmax => feed,
            };
            let slot = token_slot.filter(|_| last);
            let (index, read) = self.forward_ubatch(batch_feed, head, slot).await?;
            bytes.extend(read);
            submission = Some(index);
        }
        Ok((submission.expect("at least one micro-batch"), bytes))
    }

    /// Writes the sampler's penalty and bias records for the conversation so far plus `fed`
    /// into the penalties buffer, for the head to apply.
    fn upload_penalties(
        &self,
        fed: &[u32],
        sampling: &SamplingParams,
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
        })
    }

    /// One micro-batch: the whole transformer, top to bottom, in one submission, then its
    /// result read back (or copied to `token_slot`).
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
            head,
        };
        let mut rec = Recorder::new(gpu, &model.kernels);
        let result = record_forward(&mut rec, &model, act, &self.kv.layers, &step);
        let read: u64 = if token_slot.is_some() {
            0
        } else {
            result.iter().map(|r| r.1).sum()
        };
        let submission = rec.submit(gpu, &mut self.submit_cache, |encoder| match token_slot {
            Some(slot) => encoder.copy_buffer_to_buffer(result[0].0, 0, slot, 0, 4),
            None => {
                let mut at = 0;
                for &(buffer, bytes) in &result {
                    encoder.copy_buffer_to_buffer(buffer, 0, &act.readback, at, bytes);
                    at += bytes;
                }
            }
        });
        self.history.extend_from_slice(tokens);
        if read == 0 {
            gpu.check()?;
            return Ok((submission, Vec::new()));
        }
        Ok((submission, gpu.read_buffer(&self.act.readback, read).await?))
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
