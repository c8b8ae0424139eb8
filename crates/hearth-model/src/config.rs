use hearth_gguf::types::SUPPORTED_TYPES;
use hearth_gguf::{GgmlType, Gguf, MetadataValue, TensorInfo};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the file has no 'general.architecture' key; it is not a model GGUF")]
    NoArchitecture,
    #[error("architecture '{0}' is not supported (supported: phi3, llama, qwen2, qwen3, gemma3)")]
    UnsupportedArchitecture(String),
    #[error("metadata key '{0}' is missing")]
    MissingKey(String),
    #[error("metadata key '{key}' has an unusable value: {reason}")]
    BadKey { key: String, reason: String },
    #[error("tensor '{0}' is missing")]
    MissingTensor(String),
    #[error("tensor '{name}' has shape {found:?}, expected {expected:?}")]
    BadShape {
        name: String,
        found: Vec<u64>,
        expected: Vec<u64>,
    },
    #[error(
        "tensor '{name}' has type {ty}, which Hearth cannot run yet (supported: {SUPPORTED_TYPES})"
    )]
    UnsupportedType { name: String, ty: GgmlType },
    #[error("{0}")]
    Unsupported(String),
}

impl ModelError {
    /// A short, stable name for the kind of error (the JS API's `HearthError.code`): a file
    /// that is broken, or a sound one Hearth cannot run.
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::UnsupportedArchitecture(_)
            | ModelError::UnsupportedType { .. }
            | ModelError::Unsupported(_) => "unsupported-model",
            ModelError::NoArchitecture
            | ModelError::MissingKey(_)
            | ModelError::BadKey { .. }
            | ModelError::MissingTensor(_)
            | ModelError::BadShape { .. } => "bad-model",
        }
    }
}

/// How RoPE pairs the dimensions it rotates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// GPT-NeoX style: dimension `i` pairs with `i + n_rot/2` (phi3).
    Neox,
    /// Original style: dimension `2i` pairs with `2i + 1` (llama, after llama.cpp's Q/K permute).
    Normal,
}

/// What distinguishes one architecture's forward pass from another's: data, not code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Phi3,
    Llama,
    /// Qwen 2 and 2.5 (and the DeepSeek-R1 distills of them): biases on q, k and v.
    Qwen2,
    /// Dense Qwen 3: each query and key head RMS-normalised before RoPE.
    Qwen3,
    /// Gemma 3: scaled embeddings, norms after attention and feed-forward too, GELU gate,
    /// sliding-window attention on five layers of six.
    Gemma3,
}

impl Architecture {
    pub fn from_name(name: &str) -> Result<Self, ModelError> {
        match name {
            "phi3" => Ok(Architecture::Phi3),
            "llama" => Ok(Architecture::Llama),
            "qwen2" => Ok(Architecture::Qwen2),
            "qwen3" => Ok(Architecture::Qwen3),
            "gemma3" => Ok(Architecture::Gemma3),
            other => Err(ModelError::UnsupportedArchitecture(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Architecture::Phi3 => "phi3",
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Gemma3 => "gemma3",
        }
    }

    /// llama.cpp's converter permutes llama's Q/K rows so that adjacent dimensions pair up;
    /// the others keep Hugging Face's halves.
    pub fn rope_style(self) -> RopeStyle {
        match self {
            Architecture::Phi3
            | Architecture::Qwen2
            | Architecture::Qwen3
            | Architecture::Gemma3 => RopeStyle::Neox,
            Architecture::Llama => RopeStyle::Normal,
        }
    }

    /// The feed-forward gate's activation.
    pub fn activation(self) -> Activation {
        match self {
            Architecture::Gemma3 => Activation::GeluTanh,
            _ => Activation::Silu,
        }
    }
}

/// The activation of the feed-forward block's gate: `act(gate) · up`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `x · sigmoid(x)`.
    Silu,
    /// GELU, tanh approximation (Gemma's `gelu_pytorch_tanh`).
    GeluTanh,
}

/// Sliding-window attention (Gemma 3): the local layers see the last `window` positions and
/// rotate with their own RoPE base; every `pattern`-th layer (the last of each group) is global.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlidingWindow {
    pub window: usize,
    pub pattern: usize,
    pub rope_base: f32,
}

/// How one layer attends: the keys it sees and the rotation of its queries and keys.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerAttention {
    /// Positions a query sees, itself included; None: all before it.
    pub window: Option<usize>,
    pub rope_base: f32,
    pub rope_freq_scale: f32,
}

/// Query/key/value projection weights: one fused matrix or three.
#[derive(Clone, Debug, PartialEq)]
pub enum QkvWeights {
    /// Rows: `n_embd` query rows, then `kv_dim` key rows, then `kv_dim` value rows.
    Fused(String),
    Separate {
        q: String,
        k: String,
        v: String,
    },
}

/// Gated feed-forward input weights: one fused matrix (gate rows first) or two.
#[derive(Clone, Debug, PartialEq)]
pub enum FfnWeights {
    FusedGateUp(String),
    Separate { gate: String, up: String },
}

/// Biases added to the query, key and value projections (Qwen 2).
#[derive(Clone, Debug, PartialEq)]
pub struct QkvBias {
    pub q: String,
    pub k: String,
    pub v: String,
}

/// RMSNorm gains (`head_dim` values each) applied to every query and key head before RoPE
/// (Qwen 3).
#[derive(Clone, Debug, PartialEq)]
pub struct QkNorm {
    pub q: String,
    pub k: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    pub attn_norm: String,
    pub qkv: QkvWeights,
    pub qkv_bias: Option<QkvBias>,
    pub qk_norm: Option<QkNorm>,
    pub attn_output: String,
    /// RMSNorm of the attention block's output before the residual add (Gemma 3).
    pub post_attn_norm: Option<String>,
    pub ffn_norm: String,
    pub ffn_in: FfnWeights,
    pub ffn_down: String,
    /// RMSNorm of the feed-forward block's output before the residual add (Gemma 3).
    pub post_ffn_norm: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WeightNames {
    pub token_embd: String,
    pub layers: Vec<LayerWeights>,
    pub output_norm: String,
    /// `token_embd` when the output projection is tied to the embedding.
    pub output: String,
    pub rope_factors_long: Option<String>,
    pub rope_factors_short: Option<String>,
    /// Frequency factors used at every context length (llama 3.1's `rope_freqs`).
    pub rope_freqs: Option<String>,
}

/// Hyper-parameters of a decoder-only transformer, read from GGUF metadata and checked
/// against the tensor shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub arch: Architecture,
    pub name: Option<String>,
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    /// Dimensions of each head that RoPE rotates (`rope.dimension_count`); the rest pass through.
    pub n_rot: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// Position scale of linear RoPE scaling (`1 / rope.scaling.factor`), 1 when absent.
    pub rope_freq_scale: f32,
    /// Multiplier on RoPE's cos/sin (LongRoPE's attention factor), 1 when absent.
    pub rope_attn_factor: f32,
    pub rope_style: RopeStyle,
    pub activation: Activation,
    /// Multiplier on the token embeddings: √n_embd in Gemma, 1 elsewhere.
    pub embd_scale: f32,
    /// Multiplier on the queries before their dot products with the keys.
    pub attn_scale: f32,
    pub sliding_window: Option<SlidingWindow>,
    /// The trained context window (`context_length`).
    pub context_length: usize,
    /// The pre-extension context (`rope.scaling.original_context_length`): LongRoPE uses the
    /// long factors when the session's window exceeds it.
    pub original_context_length: usize,
    pub weights: WeightNames,
}

impl Config {
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Width of all query heads: the embedding width in most models, not all (Qwen 3).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn qkv_dim(&self) -> usize {
        self.q_dim() + 2 * self.kv_dim()
    }

    /// The attention of layer `il`: local layers of a sliding-window model see `window`
    /// positions and rotate with the local base, unscaled.
    pub fn layer_attention(&self, il: usize) -> LayerAttention {
        match self.sliding_window {
            Some(w) if il % w.pattern < w.pattern - 1 => LayerAttention {
                window: Some(w.window),
                rope_base: w.rope_base,
                rope_freq_scale: 1.0,
            },
            _ => LayerAttention {
                window: None,
                rope_base: self.rope_base,
                rope_freq_scale: self.rope_freq_scale,
            },
        }
    }

    pub fn tied_output(&self) -> bool {
        self.weights.output == self.weights.token_embd
    }

    /// Bytes of KV cache per token of context (f32 keys and values, all layers).
    /// Bytes of keys and values one token takes in the cache, at `value_bytes` per value (2
    /// for an f16 cache, 4 for f32).
    pub fn kv_bytes_per_token(&self, value_bytes: usize) -> u64 {
        (2 * self.n_layer * self.kv_dim() * value_bytes) as u64
    }

    /// Whether a session with this context window uses LongRoPE's long factors. Decided once
    /// per session, as llama.cpp does, so cached keys never change meaning mid-conversation.
    pub fn uses_long_rope_factors(&self, ctx: usize) -> bool {
        self.weights.rope_factors_long.is_some() && ctx > self.original_context_length
    }

    pub fn from_gguf(gguf: &Gguf) -> Result<Self, ModelError> {
        let arch = Architecture::from_name(gguf.architecture().ok_or(ModelError::NoArchitecture)?)?;
        let meta = Meta {
            gguf,
            prefix: arch.name(),
        };

        let n_embd = meta.usize("embedding_length")?;
        let n_layer = meta.usize("block_count")?;
        let n_head = meta.usize("attention.head_count")?;
        let n_head_kv = meta.opt_usize("attention.head_count_kv")?.unwrap_or(n_head);
        let n_ff = meta.usize("feed_forward_length")?;
        let context_length = meta.usize("context_length")?;
        // Every layer has at least six tensors (norms, attention in and out, FFN in and out).
        if n_layer * 6 > gguf.tensors.len() {
            return Err(ModelError::BadKey {
                key: meta.key("block_count"),
                reason: format!(
                    "{n_layer} layers, but the file holds {} tensors",
                    gguf.tensors.len()
                ),
            });
        }
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(ModelError::Unsupported(format!(
                "{n_head} query heads cannot share {n_head_kv} key/value heads evenly"
            )));
        }
        let head_dim = match meta.opt_usize("attention.key_length")? {
            Some(n) => n,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => {
                return Err(ModelError::Unsupported(format!(
                    "embedding width {n_embd} is not divisible by {n_head} heads"
                )));
            }
        };
        if let Some(v) = meta.opt_usize("attention.value_length")?
            && v != head_dim
        {
            return Err(ModelError::Unsupported(format!(
                "value heads {v} wide beside key heads {head_dim} wide"
            )));
        }
        if head_dim > 256 || head_dim % 4 != 0 {
            return Err(ModelError::Unsupported(format!(
                "head width {head_dim} (must be a multiple of 4, at most 256)"
            )));
        }
        let n_rot = meta.opt_usize("rope.dimension_count")?.unwrap_or(head_dim);
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(ModelError::BadKey {
                key: meta.key("rope.dimension_count"),
                reason: format!("{n_rot} rotary dimensions for a head of {head_dim}"),
            });
        }
        let rms_eps = meta
            .opt_f32("attention.layer_norm_rms_epsilon")?
            .ok_or_else(|| ModelError::MissingKey(meta.key("attention.layer_norm_rms_epsilon")))?;
        let rope_base = meta.opt_f32("rope.freq_base")?.unwrap_or(10000.0);
        let scaling_type = meta.opt_str("rope.scaling.type").unwrap_or("linear");
        let rope_freq_scale = match (scaling_type, meta.opt_f32("rope.scaling.factor")?) {
            ("none", _) | (_, None) => 1.0,
            (_, Some(0.0)) => 1.0,
            ("linear", Some(f)) if f > 0.0 => 1.0 / f,
            ("longrope", Some(_)) => 1.0,
            (kind, Some(f)) => {
                return Err(ModelError::Unsupported(format!(
                    "RoPE scaling '{kind}' with factor {f}"
                )));
            }
        };
        let rope_attn_factor = meta.opt_f32("rope.scaling.attn_factor")?.unwrap_or(1.0);
        let original_context_length = meta
            .opt_usize("rope.scaling.original_context_length")?
            .unwrap_or(context_length);
        for (v, what) in [
            (rms_eps, "RMS epsilon"),
            (rope_base, "RoPE base"),
            (rope_attn_factor, "RoPE attention factor"),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ModelError::Unsupported(format!("{what} {v}")));
            }
        }

        let sliding_window = match (arch, meta.opt_usize("attention.sliding_window")?) {
            (Architecture::Gemma3, Some(window)) => Some(SlidingWindow {
                window,
                pattern: 6,
                rope_base: 10000.0,
            }),
            _ => None,
        };
        if let Some(cap) = meta.opt_f32("final_logit_softcapping")?
            && cap != 0.0
        {
            return Err(ModelError::Unsupported(format!(
                "final logit soft-capping ({cap})"
            )));
        }
        // Gemma 3 27B scales queries by its embedding width per head, not its head width
        // (llama.cpp tells it by its 62 layers).
        let attn_scale = match arch {
            Architecture::Gemma3 if n_layer == 62 => 1.0 / ((n_embd / n_head) as f32).sqrt(),
            _ => 1.0 / (head_dim as f32).sqrt(),
        };
        let embd_scale = match arch {
            Architecture::Gemma3 => (n_embd as f32).sqrt(),
            _ => 1.0,
        };

        let weights = Self::weight_names(gguf, arch, n_layer);
        let token_embd = gguf
            .tensor(&weights.token_embd)
            .ok_or_else(|| ModelError::MissingTensor(weights.token_embd.clone()))?;
        let n_vocab = token_embd.matrix_shape().0 as usize;

        let config = Config {
            arch,
            name: gguf
                .get("general.name")
                .and_then(MetadataValue::as_str)
                .map(str::to_string),
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_rot,
            rms_eps,
            rope_base,
            rope_freq_scale,
            rope_attn_factor,
            rope_style: arch.rope_style(),
            activation: arch.activation(),
            embd_scale,
            attn_scale,
            sliding_window,
            context_length,
            original_context_length,
            weights,
        };
        config.check_tensors(gguf)?;
        Ok(config)
    }

    fn weight_names(gguf: &Gguf, arch: Architecture, n_layer: usize) -> WeightNames {
        let has = |n: &str| gguf.tensor(n).is_some();
        let layers = (0..n_layer)
            .map(|i| {
                let t = |s: &str| format!("blk.{i}.{s}.weight");
                // Fusions are what the file holds: phi3 files fuse Q/K/V and gate/up, llama
                // files keep them apart; either way they fill the same activation columns.
                let qkv = if has(&t("attn_qkv")) {
                    QkvWeights::Fused(t("attn_qkv"))
                } else {
                    QkvWeights::Separate {
                        q: t("attn_q"),
                        k: t("attn_k"),
                        v: t("attn_v"),
                    }
                };
                let ffn_in = match arch {
                    Architecture::Phi3 => FfnWeights::FusedGateUp(t("ffn_up")),
                    _ => FfnWeights::Separate {
                        gate: t("ffn_gate"),
                        up: t("ffn_up"),
                    },
                };
                let b = |s: &str| format!("blk.{i}.{s}.bias");
                // Qwen 2 has biases (llama.cpp requires them); llama files may.
                let qkv_bias =
                    (arch == Architecture::Qwen2 || has(&b("attn_q"))).then(|| QkvBias {
                        q: b("attn_q"),
                        k: b("attn_k"),
                        v: b("attn_v"),
                    });
                let qk_norm =
                    matches!(arch, Architecture::Qwen3 | Architecture::Gemma3).then(|| QkNorm {
                        q: t("attn_q_norm"),
                        k: t("attn_k_norm"),
                    });
                let gemma = arch == Architecture::Gemma3;
                LayerWeights {
                    attn_norm: t("attn_norm"),
                    qkv,
                    qkv_bias,
                    qk_norm,
                    attn_output: t("attn_output"),
                    post_attn_norm: gemma.then(|| t("post_attention_norm")),
                    ffn_norm: t("ffn_norm"),
                    ffn_in,
                    ffn_down: t("ffn_down"),
                    post_ffn_norm: gemma.then(|| t("post_ffw_norm")),
                }
            })
            .collect();
        let opt = |n: &str| has(n).then(|| n.to_string());
        WeightNames {
            token_embd: "token_embd.weight".into(),
            layers,
            output_norm: "output_norm.weight".into(),
            output: opt("output.weight").unwrap_or_else(|| "token_embd.weight".into()),
            rope_factors_long: opt("rope_factors_long.weight"),
            rope_factors_short: opt("rope_factors_short.weight"),
            rope_freqs: opt("rope_freqs.weight"),
        }
    }

    /// Every tensor the forward pass reads: (name, expected ggml dims, is a matrix).
    pub fn expected_tensors(&self) -> Vec<(String, Vec<u64>, bool)> {
        let (d, q, kv, ff, v) = (
            self.n_embd as u64,
            self.q_dim() as u64,
            self.kv_dim() as u64,
            self.n_ff as u64,
            self.n_vocab as u64,
        );
        let w = &self.weights;
        let mut out = vec![
            (w.token_embd.clone(), vec![d, v], true),
            (w.output_norm.clone(), vec![d], false),
        ];
        if !self.tied_output() {
            out.push((w.output.clone(), vec![d, v], true));
        }
        for f in [&w.rope_factors_long, &w.rope_factors_short, &w.rope_freqs]
            .into_iter()
            .flatten()
        {
            out.push((f.clone(), vec![self.n_rot as u64 / 2], false));
        }
        for l in &w.layers {
            out.push((l.attn_norm.clone(), vec![d], false));
            out.push((l.ffn_norm.clone(), vec![d], false));
            match &l.qkv {
                QkvWeights::Fused(n) => out.push((n.clone(), vec![d, q + 2 * kv], true)),
                QkvWeights::Separate {
                    q: wq,
                    k: wk,
                    v: wv,
                } => {
                    out.push((wq.clone(), vec![d, q], true));
                    out.push((wk.clone(), vec![d, kv], true));
                    out.push((wv.clone(), vec![d, kv], true));
                }
            }
            if let Some(bias) = &l.qkv_bias {
                out.push((bias.q.clone(), vec![q], false));
                out.push((bias.k.clone(), vec![kv], false));
                out.push((bias.v.clone(), vec![kv], false));
            }
            if let Some(norm) = &l.qk_norm {
                out.push((norm.q.clone(), vec![self.head_dim as u64], false));
                out.push((norm.k.clone(), vec![self.head_dim as u64], false));
            }
            out.push((l.attn_output.clone(), vec![q, d], true));
            for norm in [&l.post_attn_norm, &l.post_ffn_norm].into_iter().flatten() {
                out.push((norm.clone(), vec![d], false));
            }
            match &l.ffn_in {
                FfnWeights::FusedGateUp(n) => out.push((n.clone(), vec![d, 2 * ff], true)),
                FfnWeights::Separate { gate, up } => {
                    out.push((gate.clone(), vec![d, ff], true));
                    out.push((up.clone(), vec![d, ff], true));
                }
            }
            out.push((l.ffn_down.clone(), vec![ff, d], true));
        }
        out
    }

    fn check_tensors(&self, gguf: &Gguf) -> Result<(), ModelError> {
        for (name, expected, is_matrix) in self.expected_tensors() {
            let t: &TensorInfo = gguf
                .tensor(&name)
                .ok_or_else(|| ModelError::MissingTensor(name.clone()))?;
            // ggml drops trailing dimensions of 1; compare without them.
            let trimmed: Vec<u64> = {
                let mut dims = t.dims.clone();
                while dims.len() > expected.len() && dims.last() == Some(&1) {
                    dims.pop();
                }
                dims
            };
            if trimmed != expected {
                return Err(ModelError::BadShape {
                    name,
                    found: t.dims.clone(),
                    expected,
                });
            }
            let runnable = if is_matrix {
                t.ty.is_supported()
            } else {
                matches!(t.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16)
            };
            if !runnable {
                return Err(ModelError::UnsupportedType { name, ty: t.ty });
            }
            // Matrix kernels walk rows in steps of 32 values.
            if is_matrix && expected[0] % 32 != 0 {
                return Err(ModelError::Unsupported(format!(
                    "tensor '{name}' has rows of {} values; Hearth needs a multiple of 32",
                    expected[0]
                )));
            }
        }
        Ok(())
    }

    /// GPU bytes of all weights (in the GPU layout; tied output counted once).
    pub fn weight_bytes(&self, gguf: &Gguf) -> u64 {
        self.expected_tensors()
            .iter()
            .filter_map(|(n, _, _)| gguf.tensor(n))
            .map(|t| 4 * hearth_gguf::quant::gpu_words(t.ty, t.n_elements() as usize) as u64)
            .sum()
    }
}

/// Typed access to `{arch}.key` metadata with errors that name the key.
struct Meta<'a> {
    gguf: &'a Gguf,
    prefix: &'a str,
}

impl Meta<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.prefix)
    }

    fn opt_usize(&self, k: &str) -> Result<Option<usize>, ModelError> {
        let key = self.key(k);
        match self.gguf.get(&key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                // No real model has a dimension near this; a larger one is a corrupt file.
                Some(n) if n > 0 && n <= 1 << 24 => Ok(Some(n as usize)),
                _ => Err(ModelError::BadKey {
                    key,
                    reason: format!(
                        "{} is not a size any model has (1 to {})",
                        v.summary(),
                        1 << 24
                    ),
                }),
            },
        }
    }

    fn usize(&self, k: &str) -> Result<usize, ModelError> {
        self.opt_usize(k)?
            .ok_or_else(|| ModelError::MissingKey(self.key(k)))
    }

    fn opt_f32(&self, k: &str) -> Result<Option<f32>, ModelError> {
        let key = self.key(k);
        match self.gguf.get(&key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|f| Some(f as f32))
                .ok_or_else(|| ModelError::BadKey {
                    key,
                    reason: format!("{} is not a number", v.summary()),
                }),
        }
    }

    fn opt_str(&self, k: &str) -> Option<&str> {
        self.gguf.get(&self.key(k)).and_then(MetadataValue::as_str)
    }
}
