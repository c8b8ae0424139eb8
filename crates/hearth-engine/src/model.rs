//! A model on the GPU: its configuration, compiled kernels and uploaded weights.

use crate::error::EngineError;
use crate::gpu::Gpu;
use crate::kernels::{HeadShape, Kernels};
use crate::weights::{GpuMatrix, GpuVector, Projection, Uploader};
use hearth_gguf::{ByteSource, Gguf, TensorInfo};
use hearth_model::{Config, FfnWeights, QkvWeights};
use std::sync::Arc;
use web_time::Instant;

pub struct Layer {
    pub attn_norm: GpuVector,
    pub qkv: Vec<Projection>,
    /// (qkv_dim): the query, key and value biases, in the qkv columns' order.
    pub qkv_bias: Option<GpuVector>,
    /// (head_dim) each: the query heads' and key heads' RMSNorm gains.
    pub qk_norm: Option<(GpuVector, GpuVector)>,
    pub attn_output: GpuMatrix,
    /// (n_embd): the attention output's RMSNorm gain before the residual add (Gemma 3).
    pub post_attn_norm: Option<GpuVector>,
    pub ffn_norm: GpuVector,
    /// Gate rows land in columns `[0, n_ff)`, up rows in `[n_ff, 2 n_ff)`.
    pub ffn_gate_up: Vec<Projection>,
    pub ffn_down: GpuMatrix,
    /// (n_embd): the feed-forward output's RMSNorm gain before the residual add (Gemma 3).
    pub post_ffn_norm: Option<GpuVector>,
}

pub struct Model {
    pub gpu: Arc<Gpu>,
    pub config: Config,
    pub kernels: Kernels,
    pub token_embd: GpuMatrix,
    pub layers: Vec<Layer>,
    pub output_norm: GpuVector,
    /// `None` when the output projection is tied to `token_embd`.
    pub output: Option<GpuMatrix>,
    pub rope_factors_long: Option<GpuVector>,
    pub rope_factors_short: Option<GpuVector>,
    /// Frequency divisors when LongRoPE does not apply: the file's `rope_freqs`, or ones.
    pub rope_factors_default: GpuVector,
    pub load_profile: LoadProfile,
}

/// Where a load's time went, in seconds, from the moment pipelines start compiling: reading,
/// repacking and queueing every weight; then waiting for the pipelines still compiling; then
/// for the GPU to take the last writes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadProfile {
    pub weights_queued_s: f64,
    pub compile_wait_s: f64,
    pub gpu_wait_s: f64,
}

/// Upload progress: bytes of the file read so far, out of the bytes the weights take.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

fn heads(c: &Config) -> HeadShape {
    HeadShape {
        n_head: c.n_head as u32,
        n_head_kv: c.n_head_kv as u32,
        head_dim: c.head_dim as u32,
    }
}

impl Model {
    /// The attention heads' shape.
    pub fn heads(&self) -> HeadShape {
        heads(&self.config)
    }

    /// Builds the model from a parsed header, streaming weights from `source` to the GPU.
    pub async fn load<S: ByteSource>(
        gpu: Arc<Gpu>,
        gguf: &Gguf,
        source: &S,
        progress: Progress<'_>,
    ) -> Result<Model, EngineError> {
        let config = Config::from_gguf(gguf)?;
        let tensor = |name: &str| -> Result<&TensorInfo, EngineError> {
            gguf.tensor(name)
                .ok_or_else(|| hearth_model::ModelError::MissingTensor(name.into()).into())
        };
        let total: u64 = config
            .expected_tensors()
            .iter()
            .filter_map(|(n, _, _)| gguf.tensor(n))
            .map(|t| t.n_bytes)
            .sum();
        let mut done = 0u64;
        let mut report = |n: u64| {
            done += n;
            progress(done, total);
        };

        let formats: Vec<_> = config
            .expected_tensors()
            .iter()
            .filter(|(_, _, m)| *m)
            .filter_map(|(n, _, _)| gguf.tensor(n))
            .map(|t| t.ty)
            .collect();
        let started = Instant::now();
        let compiling = Kernels::compile(&gpu, formats, Some(heads(&config)));

        let mut up = Uploader::new(&gpu, source);
        let w = &config.weights;
        let token_embd = up.matrix(&[tensor(&w.token_embd)?], &mut report).await?;
        let mut layers = Vec::with_capacity(config.n_layer);
        for lw in &w.layers {
            let attn_norm = up.vector(&[tensor(&lw.attn_norm)?]).await?;
            let qkv = match &lw.qkv {
                QkvWeights::Fused(n) => vec![Projection {
                    weight: up.matrix(&[tensor(n)?], &mut report).await?,
                    out_offset: 0,
                }],
                QkvWeights::Separate { q, k, v } => {
                    projections(&mut up, &[tensor(q)?, tensor(k)?, tensor(v)?], &mut report).await?
                }
            };
            let qkv_bias = match &lw.qkv_bias {
                Some(b) => Some(
                    up.vector(&[tensor(&b.q)?, tensor(&b.k)?, tensor(&b.v)?])
                        .await?,
                ),
                None => None,
            };
            let qk_norm = match &lw.qk_norm {
                Some(n) => Some((
                    up.vector(&[tensor(&n.q)?]).await?,
                    up.vector(&[tensor(&n.k)?]).await?,
                )),
                None => None,
            };
            let attn_output = up.matrix(&[tensor(&lw.attn_output)?], &mut report).await?;
            let post_attn_norm = match &lw.post_attn_norm {
                Some(n) => Some(up.vector(&[tensor(n)?]).await?),
                None => None,
            };
            let ffn_norm = up.vector(&[tensor(&lw.ffn_norm)?]).await?;
            let ffn_gate_up = match &lw.ffn_in {
                FfnWeights::FusedGateUp(n) => vec![Projection {
                    weight: up.matrix(&[tensor(n)?], &mut report).await?,
                    out_offset: 0,
                }],
                FfnWeights::Separate { gate, up: u } => {
                    projections(&mut up, &[tensor(gate)?, tensor(u)?], &mut report).await?
                }
            };
            let ffn_down = up.matrix(&[tensor(&lw.ffn_down)?], &mut report).await?;
            let post_ffn_norm = match &lw.post_ffn_norm {
                Some(n) => Some(up.vector(&[tensor(n)?]).await?),
                None => None,
            };
            layers.push(Layer {
                attn_norm,
                qkv,
                qkv_bias,
                qk_norm,
                attn_output,
                post_attn_norm,
                ffn_norm,
                ffn_gate_up,
                ffn_down,
                post_ffn_norm,
            });
        }
        let output_norm = up.vector(&[tensor(&w.output_norm)?]).await?;
        let output = if config.tied_output() {
            None
        } else {
            Some(up.matrix(&[tensor(&w.output)?], &mut report).await?)
        };
        let rope_factors_long = match &w.rope_factors_long {
            Some(n) => Some(up.vector(&[tensor(n)?]).await?),
            None => None,
        };
        let rope_factors_short = match &w.rope_factors_short {
            Some(n) => Some(up.vector(&[tensor(n)?]).await?),
            None => None,
        };
        let rope_factors_default = match &w.rope_freqs {
            Some(n) => up.vector(&[tensor(n)?]).await?,
            None => up.vector_from_values("rope factors (none)", &vec![1.0; config.n_rot / 2])?,
        };
        let weights_queued = Instant::now();
        up.finish().await?;
        let kernels = compiling.ready().await?;
        let compiled = Instant::now();
        gpu.work_done().await?;
        let load_profile = LoadProfile {
            weights_queued_s: (weights_queued - started).as_secs_f64(),
            compile_wait_s: (compiled - weights_queued).as_secs_f64(),
            gpu_wait_s: compiled.elapsed().as_secs_f64(),
        };
        Ok(Model {
            load_profile,
            gpu,
            config,
            kernels,
            token_embd,
            layers,
            output_norm,
            output,
            rope_factors_long,
            rope_factors_short,
            rope_factors_default,
        })
    }

    /// The output projection (the embedding itself when tied).
    pub fn output(&self) -> &GpuMatrix {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }

    /// Bytes of weights one decoded token reads: every matrix once, the embedding row aside.
    pub fn weight_bytes_per_token(&self) -> u64 {
        let layers: u64 = self
            .layers
            .iter()
            .map(|l| {
                l.qkv
                    .iter()
                    .chain(&l.ffn_gate_up)
                    .map(|p| p.weight.file_bytes())
                    .sum::<u64>()
                    + l.attn_output.file_bytes()
                    + l.ffn_down.file_bytes()
            })
            .sum();
        layers + self.output().file_bytes()
    }

    /// GPU bytes held by the weights.
    pub fn weight_gpu_bytes(&self) -> u64 {
        let layers: u64 = self
            .layers
            .iter()
            .map(|l| {
                l.qkv
                    .iter()
                    .chain(&l.ffn_gate_up)
                    .map(|p| p.weight.gpu_bytes())
                    .sum::<u64>()
                    + l.attn_output.gpu_bytes()
                    + l.ffn_down.gpu_bytes()
            })
            .sum();
        layers + self.token_embd.gpu_bytes() + self.output.as_ref().map_or(0, GpuMatrix::gpu_bytes)
    }
}

/// Projections filling consecutive column ranges of one output from separate tensors (q, k,
/// v or gate, up): each run of neighbours with the same type and row length is stacked into
/// one matrix, so that one dispatch computes it (all of them, in most files).
async fn projections<S: ByteSource>(
    up: &mut Uploader<'_, S>,
    parts: &[&TensorInfo],
    report: &mut dyn FnMut(u64),
) -> Result<Vec<Projection>, EngineError> {
    let mut out = Vec::new();
    let (mut start, mut out_offset) = (0, 0u32);
    while start < parts.len() {
        let same = |p: &&&TensorInfo| {
            p.ty == parts[start].ty && p.matrix_shape().1 == parts[start].matrix_shape().1
        };
        let end = start + parts[start..].iter().take_while(same).count();
        let weight = up.matrix(&parts[start..end], &mut *report).await?;
        let rows = weight.rows;
        out.push(Projection { weight, out_offset });
        out_offset += rows;
        start = end;
    }
    Ok(out)
}
