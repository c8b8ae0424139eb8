//! The kernels and their WGSL: which files make up each kernel's source, the constants that
//! specialise it, the parameter struct it binds, and the sizes the shaders fix.
//!
//! Matrix kernels (matvec, matmul, embedding gather) are written against `load_w8(row, k)`
//! and specialised per weight format by prepending `shaders/weights/common.wgsl` and the
//! format's file; the block-wise ones also get the format's whole-block dot products
//! (`shaders/block_dot/`).

use crate::error::EngineError;
use crate::gpu::KvFormat;
use hearth_gguf::GgmlType;

/// A file of `shaders/`, its path given in parts.
macro_rules! shader {
    ($($part:expr),+) => {
        include_str!(concat!("../../../../shaders/", $($part),+))
    };
}

/// Bytes of the activation window matvec_cpu.wgsl reads as a uniform buffer (`x` there);
/// buffers it reads must extend this far past the window's start.
pub const X_WINDOW_BYTES: u64 = 65536;
pub(crate) const X_WINDOW_VALUES: u32 = (X_WINDOW_BYTES / 4) as u32;
/// Threads of a matvec.wgsl or matvec_gpu.wgsl workgroup (WG there).
pub(crate) const MATVEC_WORKGROUP: u32 = 64;
/// Rows each group of lanes of matvec_gpu.wgsl computes.
pub(crate) const GPU_MATVEC_ROWS: u32 = 4;
/// Threads of a matvec_cpu.wgsl workgroup (WG there).
pub(crate) const CPU_MATVEC_WORKGROUP: u32 = 16;
/// Tokens and weight rows of a matmul.wgsl tile.
pub(crate) const MATMUL_TILE: u32 = 64;
/// Threads of an attention_gpu.wgsl workgroup, and keys per tile.
pub(crate) const ATTENTION_THREADS: u32 = 64;
/// Query rows an attention_gpu.wgsl workgroup takes at most (MAX_ROWS there), and the vec4
/// its query tile holds (q_tile).
pub(crate) const ATTENTION_MAX_ROWS: u32 = 16;
pub(crate) const ATTENTION_Q_TILE: u32 = 512;
/// Candidates kept by GPU top-k selection (`K` in top_k.wgsl).
pub const TOP_K: u32 = 128;
/// Values each top-k workgroup sorts (`CHUNK` in top_k.wgsl).
pub const TOP_K_CHUNK: u32 = 2048;

/// Every kernel, with what specialises its pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// matvec.wgsl, the general matrix kernel: `threads_per_row` threads share a row, each
    /// workgroup multiplies `tokens` tokens (more than one: prefill on CPU adapters).
    Matvec {
        ty: GgmlType,
        threads_per_row: u32,
        tokens: u32,
    },
    /// matvec_cpu.wgsl: CPU adapters, activations through uniform windows, `rows_per_thread`.
    MatvecCpu {
        ty: GgmlType,
        rows_per_thread: u32,
    },
    /// matvec_gpu.wgsl: decode on GPUs, `lanes` to a group of four rows; with `normed` the
    /// input is RMS-normalised as it is read.
    MatvecGpu {
        ty: GgmlType,
        lanes: u32,
        normed: bool,
    },
    /// matmul.wgsl: prefill on GPUs, 64 × 64 tiles; `normed` as above.
    Matmul {
        ty: GgmlType,
        normed: bool,
    },
    Embed(GgmlType),
    /// rmsnorm.wgsl with `threads` a row.
    RmsNorm {
        threads: u32,
    },
    RopeKv,
    /// qkv_bias.wgsl: q, k and v biases added after their products.
    QkvBias,
    /// head_norm.wgsl with `threads` a head: query and key heads normalised before RoPE.
    HeadNorm {
        threads: u32,
    },
    /// attention_cpu.wgsl with `threads` per query head: CPU adapters.
    AttentionCpu {
        threads: u32,
    },
    /// attention_gpu.wgsl with one tile shape: GPUs.
    AttentionGpu(AttentionTile),
    AttentionCombine,
    Gate,
    /// argmax.wgsl with `threads` in its one workgroup.
    Argmax {
        threads: u32,
    },
    Penalize,
    /// mask.wgsl: a constraint's disallowed tokens out of the logits.
    Mask,
    TopK,
}

/// One attention_gpu.wgsl specialisation: query rows per workgroup (ROWS) and output rows per
/// thread (SLOTS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttentionTile {
    pub rows: u32,
    pub slots: u32,
}

impl Kernel {
    /// The WGSL: shared files first, then the kernel's own.
    pub fn source(self, kv: KvFormat) -> Result<String, EngineError> {
        let kv_rope = || kv_prelude(kv).to_owned() + shader!("rope_params.wgsl");
        Ok(match self {
            Kernel::Matvec { ty, .. } => {
                weight_format_source(ty)? + shader!("matrix_params.wgsl") + shader!("matvec.wgsl")
            }
            Kernel::MatvecCpu { ty, .. } => {
                shader!("gate_activation.wgsl").to_owned()
                    + &block_kernel_source(ty, format_shaders(ty)?.cpu, shader!("matvec_cpu.wgsl"))?
            }
            Kernel::MatvecGpu { ty, .. } => {
                shader!("gate_activation.wgsl").to_owned()
                    + &block_kernel_source(ty, format_shaders(ty)?.gpu, shader!("matvec_gpu.wgsl"))?
            }
            Kernel::Matmul { ty, .. } => {
                weight_format_source(ty)? + shader!("matrix_params.wgsl") + shader!("matmul.wgsl")
            }
            Kernel::Embed(ty) => weight_format_source(ty)? + shader!("embed.wgsl"),
            Kernel::RmsNorm { .. } => shader!("rmsnorm.wgsl").into(),
            Kernel::RopeKv => kv_rope() + shader!("rope_common.wgsl") + shader!("rope_kv.wgsl"),
            Kernel::QkvBias => shader!("qkv_bias.wgsl").into(),
            Kernel::HeadNorm { .. } => shader!("head_norm.wgsl").into(),
            Kernel::AttentionCpu { .. } => {
                kv_rope() + shader!("attention_common.wgsl") + shader!("attention_cpu.wgsl")
            }
            Kernel::AttentionGpu(_) => {
                kv_rope()
                    + shader!("attention_common.wgsl")
                    + shader!("rope_common.wgsl")
                    + shader!("attention_gpu.wgsl")
            }
            Kernel::AttentionCombine => shader!("attention_combine.wgsl").into(),
            Kernel::Gate => shader!("gate_activation.wgsl").to_owned() + shader!("gate.wgsl"),
            Kernel::Argmax { .. } => shader!("argmax.wgsl").into(),
            Kernel::Penalize => shader!("penalize.wgsl").into(),
            Kernel::Mask => shader!("mask.wgsl").into(),
            Kernel::TopK => shader!("top_k.wgsl").into(),
        })
    }

    /// The pipeline-overridable constants this specialisation sets.
    pub fn constants(self) -> Vec<(&'static str, f64)> {
        let flag = |on: bool| if on { 1.0 } else { 0.0 };
        match self {
            Kernel::Matvec {
                threads_per_row,
                tokens,
                ..
            } => {
                vec![
                    ("THREADS_PER_ROW", threads_per_row as f64),
                    ("TOKENS", tokens as f64),
                ]
            }
            Kernel::MatvecCpu {
                rows_per_thread, ..
            } => {
                vec![("ROWS_PER_THREAD", rows_per_thread as f64)]
            }
            Kernel::MatvecGpu { lanes, normed, .. } => {
                vec![("THREADS_PER_ROW", lanes as f64), ("NORMED", flag(normed))]
            }
            Kernel::Matmul { normed, .. } => vec![("NORMED", flag(normed))],
            Kernel::RmsNorm { threads }
            | Kernel::HeadNorm { threads }
            | Kernel::Argmax { threads } => {
                vec![("WG", threads as f64)]
            }
            Kernel::AttentionCpu { threads } => vec![("WG", threads as f64)],
            Kernel::AttentionGpu(tile) => vec![
                ("WG", ATTENTION_THREADS as f64),
                ("ROWS", tile.rows as f64),
                ("SLOTS", tile.slots as f64),
            ],
            Kernel::Embed(_)
            | Kernel::RopeKv
            | Kernel::QkvBias
            | Kernel::AttentionCombine
            | Kernel::Gate
            | Kernel::Penalize
            | Kernel::Mask
            | Kernel::TopK => Vec::new(),
        }
    }

    /// The WGSL struct the kernel binds as its parameters (binding 0), whose Rust twin in
    /// `params.rs` has the same name.
    pub fn params_name(self) -> &'static str {
        match self {
            Kernel::Matvec { .. } | Kernel::Matmul { .. } => "MatrixParams",
            Kernel::MatvecCpu { .. } => "CpuMatrixParams",
            Kernel::MatvecGpu { .. } => "GpuMatrixParams",
            Kernel::Embed(_) => "EmbedParams",
            Kernel::RmsNorm { .. } => "NormParams",
            Kernel::RopeKv => "RopeParams",
            Kernel::QkvBias => "BiasParams",
            Kernel::HeadNorm { .. } => "HeadNormParams",
            Kernel::AttentionCpu { .. } | Kernel::AttentionGpu(_) => "AttnParams",
            Kernel::AttentionCombine => "CombineParams",
            Kernel::Gate => "GateParams",
            Kernel::Argmax { .. } => "ArgmaxParams",
            Kernel::Penalize => "PenaltyParams",
            Kernel::Mask => "MaskParams",
            Kernel::TopK => "TopKParams",
        }
    }
}

/// Names kernels in profiles: the kernel, then its weight format or shape.
impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Kernel::Matvec { ty, tokens: 1, .. } => write!(f, "Matvec({ty})"),
            Kernel::Matvec { ty, .. } => write!(f, "MatvecBlock({ty})"),
            Kernel::MatvecCpu { ty, .. } => write!(f, "MatvecCpu({ty})"),
            Kernel::MatvecGpu {
                ty, normed: false, ..
            } => write!(f, "MatvecGpu({ty})"),
            Kernel::MatvecGpu {
                ty, normed: true, ..
            } => write!(f, "NormedMatvecGpu({ty})"),
            Kernel::Matmul { ty, normed: false } => write!(f, "Matmul({ty})"),
            Kernel::Matmul { ty, normed: true } => write!(f, "NormedMatmul({ty})"),
            Kernel::Embed(ty) => write!(f, "Embed({ty})"),
            Kernel::RmsNorm { .. } => write!(f, "RmsNorm"),
            Kernel::RopeKv => write!(f, "RopeKv"),
            Kernel::QkvBias => write!(f, "QkvBias"),
            Kernel::HeadNorm { .. } => write!(f, "HeadNorm"),
            Kernel::AttentionCpu { threads } => write!(f, "AttentionCpu({threads})"),
            Kernel::AttentionGpu(t) => write!(f, "AttentionGpu({} rows)", t.rows),
            Kernel::AttentionCombine => write!(f, "AttentionCombine"),
            Kernel::Gate => write!(f, "Gate"),
            Kernel::Argmax { .. } => write!(f, "Argmax"),
            Kernel::Penalize => write!(f, "Penalize"),
            Kernel::Mask => write!(f, "Mask"),
            Kernel::TopK => write!(f, "TopK"),
        }
    }
}

/// Declares how the KV caches hold values, for rope_kv.wgsl and attention: `KvWord`, the
/// cache's element holding four values, `kv4` reading one and `kv_word` making one.
fn kv_prelude(kv: KvFormat) -> &'static str {
    match kv {
        KvFormat::F32 => {
            "alias KvWord = vec4<f32>;
fn kv4(w: KvWord) -> vec4<f32> { return w; }
fn kv_word(v: vec4<f32>) -> KvWord { return v; }
"
        }
        KvFormat::F16 => {
            "enable f16;
alias KvWord = vec4<f16>;
fn kv4(w: KvWord) -> vec4<f32> { return vec4<f32>(w); }
fn kv_word(v: vec4<f32>) -> KvWord { return vec4<f16>(v); }
"
        }
        KvFormat::PackedF16 => {
            "alias KvWord = vec2<u32>;
fn kv4(w: KvWord) -> vec4<f32> { return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }
fn kv_word(v: vec4<f32>) -> KvWord { return vec2<u32>(pack2x16float(v.xy), pack2x16float(v.zw)); }
"
        }
    }
}

/// Whether a weight matrix stored as `ty` has GPU kernels.
pub fn weight_format_supported(ty: GgmlType) -> bool {
    format_shaders(ty).is_ok()
}

/// A weight format's shader files: its reader behind `load_w8` (`shaders/weights/`) and its
/// whole-block dot products for matvec_cpu.wgsl and matvec_gpu.wgsl (`shaders/block_dot/`).
pub(crate) struct FormatShaders {
    reader: &'static str,
    /// The CPU-adapter kernel's blocks.
    pub cpu: BlockDot,
    /// The GPU kernel's: the same 32-value blocks, or for the K-quants parts of a super-block
    /// small enough for a GPU thread's registers (`shaders/block_dot/gpu/`).
    pub gpu: BlockDot,
}

/// A format's block activations and four-row block dot product: `files` in order, whether
/// they define only a one-row `block_dot` that by_row.wgsl repeats for four rows (the rarer
/// formats), and the values per block (BLOCK_VALUES).
#[derive(Clone, Copy)]
pub(crate) struct BlockDot {
    files: &'static [&'static str],
    by_row: bool,
    pub values: u32,
}

pub(crate) fn format_shaders(ty: GgmlType) -> Result<FormatShaders, EngineError> {
    macro_rules! dot {
        ($name:literal, $values:literal) => {
            BlockDot {
                files: &[shader!("block_dot/", $name, ".wgsl")],
                by_row: false,
                values: $values,
            }
        };
        ($name:literal, $values:literal, by_row) => {
            BlockDot {
                files: &[shader!("block_dot/", $name, ".wgsl")],
                by_row: true,
                values: $values,
            }
        };
    }
    macro_rules! reader {
        ($name:literal) => {
            shader!("weights/", $name, ".wgsl")
        };
    }
    const CHUNK64: &str = shader!("block_dot/gpu/chunk64.wgsl");
    // Most formats' 32-value blocks serve both kernels.
    let both = |reader: &'static str, dot: BlockDot| FormatShaders {
        reader,
        cpu: dot,
        gpu: dot,
    };
    Ok(match ty {
        GgmlType::F32 => both(reader!("f32"), dot!("f32", 32, by_row)),
        GgmlType::F16 => both(reader!("f16"), dot!("f16", 32)),
        GgmlType::Bf16 => both(reader!("bf16"), dot!("bf16", 32, by_row)),
        GgmlType::Q8_0 => both(reader!("q8_0"), dot!("q8_0", 32)),
        GgmlType::Q4_0 => both(reader!("q4_0"), dot!("q4_0", 32)),
        GgmlType::Q4_1 => both(reader!("q4_1"), dot!("q4_1", 32)),
        GgmlType::Q5_0 => both(reader!("q5_0"), dot!("q5_0", 32, by_row)),
        GgmlType::Q5_1 => both(reader!("q5_1"), dot!("q5_1", 32, by_row)),
        GgmlType::Q4K => FormatShaders {
            reader: reader!("q4_k"),
            cpu: dot!("q4_k", 256),
            gpu: BlockDot {
                files: &[CHUNK64, shader!("block_dot/gpu/q4_k.wgsl")],
                by_row: false,
                values: 64,
            },
        },
        GgmlType::Q5K => FormatShaders {
            reader: reader!("q5_k"),
            cpu: dot!("q5_k", 256, by_row),
            gpu: BlockDot {
                files: &[CHUNK64, shader!("block_dot/gpu/q5_k.wgsl")],
                by_row: false,
                values: 64,
            },
        },
        GgmlType::Q6K => FormatShaders {
            reader: reader!("q6_k"),
            cpu: dot!("q6_k", 256),
            gpu: dot!("gpu/q6_k", 32),
        },
        other => {
            return Err(EngineError::Unsupported(format!(
                "no GPU kernel for {other} weights"
            )));
        }
    })
}

/// The shared helpers and the format's reader, to put before a matrix kernel.
fn weight_format_source(ty: GgmlType) -> Result<String, EngineError> {
    let body = format_shaders(ty)?.reader;
    let scales = if matches!(ty, GgmlType::Q4K | GgmlType::Q5K) {
        shader!("weights/kquant_scales.wgsl")
    } else {
        ""
    };
    Ok(format!(
        "{}\n{scales}\n{body}\n",
        shader!("weights/common.wgsl")
    ))
}

/// A matrix kernel built on whole-block dot products: the format's reader, the blocks'
/// helpers, the format's block files, then the kernel.
fn block_kernel_source(ty: GgmlType, dot: BlockDot, kernel: &str) -> Result<String, EngineError> {
    let mut source = weight_format_source(ty)? + shader!("block_dot/common.wgsl");
    for file in dot.files {
        source += file;
    }
    if dot.by_row {
        source += shader!("block_dot/by_row.wgsl");
    }
    Ok(source + kernel)
}
