//! A model on the GPU: its configuration, compiled kernels and uploaded weights.

use crate::error::EngineError;
use crate::gpu::Gpu;
use crate::kernels::{HeadShape, Kernels};
use crate::weights::{GpuMatrix, GpuVector, Projection};
use hearth_gguf::{ByteSource, Gguf, TensorInfo};
use hearth_model::{Config, FfnWeights, QkvWeights};
use std::sync::Arc;

pub struct Layer {
    pub attn_norm: GpuVector,
    pub qkv: Vec<Projection>,
    pub attn_output: GpuMatrix,
    pub ffn_norm: GpuVector,
    /// Gate rows land in columns `[0, n_ff)`, up rows in `[n_ff, 2 n_ff)`.
    pub ffn_gate_up: Vec<Projection>,
    pub ffn_down: GpuMatrix,
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
        let kernels = Kernels::new(&gpu, formats, Some(heads(&config))).await?;

        let matrix = async |name: &str, report: &mut dyn FnMut(u64)| {
            GpuMatrix::upload(&gpu, source, tensor(name)?, report).await
        };
        let vector = async |name: &str| GpuVector::upload(&gpu, source, tensor(name)?).await;

        let w = &config.weights;
        let token_embd = matrix(&w.token_embd, &mut report).await?;
        let mut layers = Vec::with_capacity(config.n_layer);
        for lw in &w.layers {
            let attn_norm = vector(&lw.attn_norm).await?;
            let qkv = match &lw.qkv {
                QkvWeights::Fused(n) => vec![Projection {
                    weight: matrix(n, &mut report).await?,
                    out_offset: 0,
                }],
                QkvWeights::Separate { q, k, v } => {
                    projections(
                        &gpu,
                        source,
                        &[tensor(q)?, tensor(k)?, tensor(v)?],
                        &mut report,
                    )
                    .await?
                }
            };
            let attn_output = matrix(&lw.attn_output, &mut report).await?;
            let ffn_norm = vector(&lw.ffn_norm).await?;
            let ffn_gate_up = match &lw.ffn_in {
                FfnWeights::FusedGateUp(n) => vec![Projection {
                    weight: matrix(n, &mut report).await?,
                    out_offset: 0,
                }],
                FfnWeights::Separate { gate, up } => {
                    projections(&gpu, source, &[tensor(gate)?, tensor(up)?], &mut report).await?
                }
            };
            let ffn_down = matrix(&lw.ffn_down, &mut report).await?;
            layers.push(Layer {
                attn_norm,
                qkv,
                attn_output,
                ffn_norm,
                ffn_gate_up,
                ffn_down,
            });
        }
        let output_norm = vector(&w.output_norm).await?;
        let output = if config.tied_output() {
            None
        } else {
            Some(matrix(&w.output, &mut report).await?)
        };
        let rope_factors_long = match &w.rope_factors_long {
            Some(n) => Some(vector(n).await?),
            None => None,
        };
        let rope_factors_short = match &w.rope_factors_short {
            Some(n) => Some(vector(n).await?),
            None => None,
        };
        let rope_factors_default = match &w.rope_freqs {
            Some(n) => vector(n).await?,
            None => {
                GpuVector::from_values(&gpu, "rope factors (none)", &vec![1.0; config.n_rot / 2])
                    .await?
            }
        };
        gpu.check()?;
        Ok(Model {
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
    gpu: &Gpu,
    source: &S,
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
        let weight =
            GpuMatrix::upload_stacked(gpu, source, &parts[start..end], &mut *report).await?;
        let rows = weight.rows;
        out.push(Projection { weight, out_offset });
        out_offset += rows;
        start = end;
    }
    Ok(out)
}
