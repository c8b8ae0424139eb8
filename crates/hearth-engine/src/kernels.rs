//! WGSL kernels: compiled once per model load, then recorded into one command submission per
//! forward pass by a [`Recorder`].
//!
//! Matrix kernels (matvec, matmul, embedding gather) are written against
//! `load_w8(row, k)` and specialised per weight format by prepending
//! `shaders/weights/common.wgsl` and the format's file.

use crate::gpu::{Gpu, KvCache};
use crate::model::Projection;
use crate::weights::{GpuMatrix, GpuVector};
use crate::EngineError;
use hearth_gguf::GgmlType;
use std::collections::HashMap;

const COMMON: &str = include_str!("../../../shaders/weights/common.wgsl");
const ATTENTION_COMMON: &str = include_str!("../../../shaders/attention_common.wgsl");
const ROPE_COMMON: &str = include_str!("../../../shaders/rope_common.wgsl");
const KQUANT_SCALES: &str = include_str!("../../../shaders/weights/kquant_scales.wgsl");

/// Whether a weight matrix stored as `ty` has a GPU kernel.
pub fn weight_format_supported(ty: GgmlType) -> bool {
    format_shaders(ty).is_ok()
}

/// A weight format's shader files: its reader behind `load_w8` (`shaders/weights/`) and its
/// whole-block dot products for matvec_cpu.wgsl and matvec_gpu.wgsl (`shaders/block_dot/`).
struct FormatShaders {
    reader: &'static str,
    /// The CPU-adapter kernel's blocks.
    cpu: BlockDot,
    /// The GPU kernel's: the same 32-value blocks, or for the K-quants parts of a super-block
    /// small enough for a GPU thread's registers (`shaders/block_dot/gpu/`).
    gpu: BlockDot,
}

/// A format's block activations and four-row block dot product: `files` in order, and
/// whether they define only a one-row `block_dot` that by_row.wgsl repeats for four rows (the
/// rarer formats), and the values per block (BLOCK_VALUES).
#[derive(Clone, Copy)]
struct BlockDot {
    files: &'static [&'static str],
    by_row: bool,
    values: u32,
}

const CHUNK64: &str = include_str!("../../../shaders/block_dot/gpu/chunk64.wgsl");

fn format_shaders(ty: GgmlType) -> Result<FormatShaders, EngineError> {
    macro_rules! dot {
        ($name:literal, $values:literal) => {
            BlockDot { files: &[include_str!(concat!("../../../shaders/block_dot/", $name, ".wgsl"))], by_row: false, values: $values }
        };
        ($name:literal, $values:literal, by_row) => {
            BlockDot { files: &[include_str!(concat!("../../../shaders/block_dot/", $name, ".wgsl"))], by_row: true, values: $values }
        };
    }
    macro_rules! reader {
        ($name:literal) => {
            include_str!(concat!("../../../shaders/weights/", $name, ".wgsl"))
        };
    }
    // Most formats' 32-value blocks serve both kernels.
    let both = |reader: &'static str, dot: BlockDot| FormatShaders { reader, cpu: dot, gpu: dot };
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
            gpu: BlockDot { files: &[CHUNK64, include_str!("../../../shaders/block_dot/gpu/q4_k.wgsl")], by_row: false, values: 64 },
        },
        GgmlType::Q5K => FormatShaders {
            reader: reader!("q5_k"),
            cpu: dot!("q5_k", 256, by_row),
            gpu: BlockDot { files: &[CHUNK64, include_str!("../../../shaders/block_dot/gpu/q5_k.wgsl")], by_row: false, values: 64 },
        },
        GgmlType::Q6K => FormatShaders { reader: reader!("q6_k"), cpu: dot!("q6_k", 256), gpu: dot!("gpu/q6_k", 32) },
        other => return Err(EngineError::Unsupported(format!("no GPU kernel for {other} weights"))),
    })
}

/// The shared helpers and the format's reader, to put before a matrix kernel.
fn weight_format_source(ty: GgmlType) -> Result<String, EngineError> {
    let body = format_shaders(ty)?.reader;
    let scales = if matches!(ty, GgmlType::Q4K | GgmlType::Q5K) { KQUANT_SCALES } else { "" };
    Ok(format!("{COMMON}\n{scales}\n{body}\n"))
}

/// A matrix kernel built on whole-block dot products: the format's reader, the blocks'
/// helpers, the format's block files, then the kernel.
fn block_kernel_source(ty: GgmlType, dot: BlockDot, kernel: &str) -> Result<String, EngineError> {
    let mut source = weight_format_source(ty)? + include_str!("../../../shaders/block_dot/common.wgsl");
    for file in dot.files {
        source += file;
    }
    if dot.by_row {
        source += include_str!("../../../shaders/block_dot/by_row.wgsl");
    }
    Ok(source + kernel)
}

/// The kernels of the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Matvec(GgmlType),
    /// matvec.wgsl over blocks of tokens: prefill on CPU-emulated adapters when the
    /// activations cannot be read through a uniform window (see `MatvecCpu`).
    MatvecBlock(GgmlType),
    /// matvec_cpu.wgsl: decode and prefill on CPU-emulated adapters.
    MatvecCpu(GgmlType),
    /// matvec_gpu.wgsl: decode on GPUs.
    MatvecGpu(GgmlType),
    /// matvec_gpu.wgsl with its input RMS-normalised as it is read (NORMED).
    NormedMatvecGpu(GgmlType),
    Matmul(GgmlType),
    /// matmul.wgsl with its input RMS-normalised as it is read (NORMED).
    NormedMatmul(GgmlType),
    Embed(GgmlType),
    RmsNorm,
    RopeKv,
    /// attention_cpu.wgsl with this many threads per query head (its WG): CPU adapters.
    AttentionCpu(u32),
    /// attention_gpu.wgsl with one tile shape: GPUs.
    AttentionGpu(AttentionTile),
    SiluGate,
    Argmax,
    Penalize,
    TopK,
    AttentionCombine,
}

/// Declares how the KV caches hold values, for rope_kv.wgsl and attention.wgsl: `KvWord`,
/// the cache's element holding four values, `kv4` reading one and `kv_word` making one.
fn kv_prelude(kv: KvCache) -> &'static str {
    match kv {
        KvCache::F32 => "alias KvWord = vec4<f32>;\nfn kv4(w: KvWord) -> vec4<f32> { return w; }\nfn kv_word(v: vec4<f32>) -> KvWord { return v; }\n",
        KvCache::F16 => "enable f16;\nalias KvWord = vec4<f16>;\nfn kv4(w: KvWord) -> vec4<f32> { return vec4<f32>(w); }\nfn kv_word(v: vec4<f32>) -> KvWord { return vec4<f16>(v); }\n",
        KvCache::PackedF16 => "alias KvWord = vec2<u32>;\nfn kv4(w: KvWord) -> vec4<f32> { return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }\nfn kv_word(v: vec4<f32>) -> KvWord { return vec2<u32>(pack2x16float(v.xy), pack2x16float(v.zw)); }\n",
    }
}

impl Kernel {
    fn source(self, kv: KvCache) -> Result<String, EngineError> {
        Ok(match self {
            Kernel::Matvec(ty) | Kernel::MatvecBlock(ty) => weight_format_source(ty)? + include_str!("../../../shaders/matvec.wgsl"),
            Kernel::MatvecCpu(ty) => block_kernel_source(ty, format_shaders(ty)?.cpu, include_str!("../../../shaders/matvec_cpu.wgsl"))?,
            Kernel::MatvecGpu(ty) | Kernel::NormedMatvecGpu(ty) => block_kernel_source(ty, format_shaders(ty)?.gpu, include_str!("../../../shaders/matvec_gpu.wgsl"))?,
            Kernel::Matmul(ty) | Kernel::NormedMatmul(ty) => weight_format_source(ty)? + include_str!("../../../shaders/matmul.wgsl"),
            Kernel::Embed(ty) => weight_format_source(ty)? + include_str!("../../../shaders/embed.wgsl"),
            Kernel::RmsNorm => include_str!("../../../shaders/rmsnorm.wgsl").into(),
            Kernel::RopeKv => kv_prelude(kv).to_owned() + ROPE_COMMON + include_str!("../../../shaders/rope_kv.wgsl"),
            Kernel::AttentionCpu(_) => kv_prelude(kv).to_owned() + ATTENTION_COMMON + include_str!("../../../shaders/attention_cpu.wgsl"),
            Kernel::AttentionGpu(_) => kv_prelude(kv).to_owned() + ATTENTION_COMMON + ROPE_COMMON + include_str!("../../../shaders/attention_gpu.wgsl"),
            Kernel::SiluGate => include_str!("../../../shaders/silu_gate.wgsl").into(),
            Kernel::Argmax => include_str!("../../../shaders/argmax.wgsl").into(),
            Kernel::Penalize => include_str!("../../../shaders/penalize.wgsl").into(),
            Kernel::TopK => include_str!("../../../shaders/top_k.wgsl").into(),
            Kernel::AttentionCombine => include_str!("../../../shaders/attention_combine.wgsl").into(),
        })
    }
}

/// Compiled pipelines, made once at load time.
pub struct Kernels {
    pipelines: HashMap<Kernel, wgpu::ComputePipeline>,
    /// Threads sharing a matvec row, or a group of four rows in matvec_gpu.wgsl
    /// (THREADS_PER_ROW); 1 means a CPU-emulated adapter, which takes matvec_cpu.wgsl for
    /// decode and prefill instead of matvec_gpu.wgsl and the tiled matmul.
    threads_per_row: u32,
    /// Whether matrix inputs can be bound as uniform windows (`MatvecCpu`): CPU adapters
    /// whose uniform bindings reach X_WINDOW_BYTES.
    x_window: bool,
    /// Whether the GPU kernels take over RMSNorm and a decoded token's RoPE (`Gpu::kernel_fusion`).
    fusion: bool,
    /// Offsets of uniform bindings are multiples of this.
    uniform_alignment: u64,
    /// How the KV caches these kernels read and write hold values.
    kv_cache: KvCache,
}

/// Bytes of the activation window `MatvecCpu` reads as a uniform buffer (`x` in
/// matvec_cpu.wgsl); buffers it reads must extend this far past the window's start.
pub const X_WINDOW_BYTES: u64 = 65536;
const X_WINDOW_VALUES: u32 = (X_WINDOW_BYTES / 4) as u32;

/// Threads in a matvec workgroup (WG in matvec.wgsl and matvec_gpu.wgsl).
const MATVEC_WORKGROUP: u32 = 64;
/// Rows each group of lanes of matvec_gpu.wgsl computes.
const GPU_MATVEC_ROWS: u32 = 4;
/// Tokens and weight rows of a matmul.wgsl tile.
const MATMUL_TILE: u32 = 64;
/// Rows each thread of `MatvecCpu` computes (ROWS_PER_THREAD in matvec_cpu.wgsl): one read of
/// a block's activations serves them all. Sixteen for the small quantized blocks (SwiftShader:
/// Q4_0, Q4_1 and Q8_0 1.1-1.2x faster than eight; lavapipe unchanged); eight for the rest,
/// whose wider values or 256-value blocks fill the registers (F16 and Q4_K 5-10% slower).
fn cpu_rows_per_thread(ty: GgmlType) -> u32 {
    if matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0) { 16 } else { 8 }
}
/// Threads in a `MatvecCpu` workgroup (WG in matvec_cpu.wgsl).
const CPU_MATVEC_WORKGROUP: u32 = 16;
/// Threads of an attention_gpu.wgsl workgroup, and keys per tile.
const ATTENTION_THREADS: u32 = 64;
/// Query rows an attention_gpu.wgsl workgroup takes at most (MAX_ROWS there), and the vec4
/// its query tile holds.
const ATTENTION_MAX_ROWS: u32 = 16;
const ATTENTION_Q_TILE: u32 = 512;
/// Threads per head of attention_cpu.wgsl: the fewest that give each thread at most four
/// vec4 output slots (see `Kernels::cpu_attention_threads`): every thread there re-reads each
/// tile's scores, and SwiftShader runs a workgroup's lanes 4 at a time, switching between
/// them at barriers.
const CPU_ATTENTION_THREADS: [u32; 3] = [4, 8, 16];
/// Fewest keys per decode split on CPU adapters, where two cores need few workgroups.
const CPU_ATTENTION_SPLIT: u32 = 256;
/// Threads of rmsnorm.wgsl and argmax.wgsl on CPU adapters.
const CPU_REDUCTION_THREADS: u32 = 4;
/// Tokens a MatvecBlock workgroup multiplies each weight into.
const PREFILL_TOKENS_PER_BLOCK: u32 = 8;

impl Kernels {
    /// Compiles the generic kernels and the matrix kernels for each weight format in `formats`.
    /// `heads` adds the attention kernels for heads of that shape.
    pub async fn new(gpu: &Gpu, formats: impl IntoIterator<Item = GgmlType>, heads: Option<HeadShape>) -> Result<Self, EngineError> {
        let threads_per_row = gpu.matvec_threads_per_row();
        let x_window = threads_per_row == 1 && gpu.limits.max_uniform_buffer_binding_size >= X_WINDOW_BYTES;
        let fusion = threads_per_row > 1 && gpu.kernel_fusion();
        let mut wanted = vec![Kernel::RmsNorm, Kernel::RopeKv, Kernel::SiluGate, Kernel::Argmax, Kernel::Penalize, Kernel::TopK, Kernel::AttentionCombine];
        match heads {
            Some(heads) if threads_per_row == 1 => wanted.push(Kernel::AttentionCpu(cpu_attention_threads(heads.head_dim))),
            Some(heads) => {
                let tiles = AttentionTiles::new(heads);
                wanted.extend([Kernel::AttentionGpu(tiles.prefill), Kernel::AttentionGpu(tiles.decode)]);
            }
            None => {}
        }
        for ty in formats {
            // Matvec is the general kernel, for inputs the faster ones cannot take.
            // GPUs fuse RMSNorm into the products that follow it; CPU adapters, where a
            // dispatch costs little, keep rmsnorm.wgsl.
            let fast = if threads_per_row == 1 {
                vec![Some(Kernel::MatvecBlock(ty)), x_window.then_some(Kernel::MatvecCpu(ty))]
            } else {
                vec![Some(Kernel::Matmul(ty)), Some(Kernel::MatvecGpu(ty)), fusion.then_some(Kernel::NormedMatmul(ty)), fusion.then_some(Kernel::NormedMatvecGpu(ty))]
            };
            for k in [Kernel::Matvec(ty), Kernel::Embed(ty)].into_iter().chain(fast.into_iter().flatten()) {
                if !wanted.contains(&k) {
                    wanted.push(k);
                }
            }
        }
        let mut pipelines = HashMap::new();
        let matvec_constants = [("THREADS_PER_ROW", threads_per_row as f64)];
        let normed_matvec_constants = [("THREADS_PER_ROW", threads_per_row as f64), ("NORMED", 1.0)];
        let normed_matmul_constants = [("NORMED", 1.0)];
        let block_constants = [("THREADS_PER_ROW", threads_per_row as f64), ("TOKENS", PREFILL_TOKENS_PER_BLOCK as f64)];
        // Threads of the one-workgroup reductions: few on CPU adapters, where a barrier costs a
        // switch between every 4 lanes (SwiftShader: RmsNorm 0.13 -> 0.06 ms a dispatch).
        let reduction_threads = |gpu_threads: f64| [("WG", if threads_per_row == 1 { CPU_REDUCTION_THREADS as f64 } else { gpu_threads })];
        let (norm_constants, argmax_constants) = (reduction_threads(64.0), reduction_threads(256.0));
        for kernel in wanted {
            let (attention_constants, cpu_constants);
            let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
            let module = gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&format!("{kernel:?}")),
                source: wgpu::ShaderSource::Wgsl(kernel.source(gpu.kv_cache())?.into()),
            });
            let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&format!("{kernel:?}")),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: match kernel {
                        Kernel::Matvec(_) | Kernel::MatvecGpu(_) => &matvec_constants,
                        Kernel::NormedMatvecGpu(_) => &normed_matvec_constants,
                        Kernel::NormedMatmul(_) => &normed_matmul_constants,
                        Kernel::MatvecBlock(_) => &block_constants,
                        Kernel::MatvecCpu(ty) => {
                            cpu_constants = [("ROWS_PER_THREAD", cpu_rows_per_thread(ty) as f64)];
                            &cpu_constants
                        }
                        Kernel::RmsNorm => &norm_constants,
                        Kernel::Argmax => &argmax_constants,
                        Kernel::AttentionCpu(threads) => {
                            attention_constants = vec![("WG", threads as f64)];
                            &attention_constants
                        }
                        Kernel::AttentionGpu(tile) => {
                            attention_constants = vec![("WG", ATTENTION_THREADS as f64), ("ROWS", tile.rows as f64), ("SLOTS", tile.slots as f64)];
                            &attention_constants
                        }
                        _ => &[],
                    },
                    ..Default::default()
                },
                cache: None,
            });
            if let Some(e) = scope.pop().await {
                return Err(EngineError::Gpu(format!("compiling the {kernel:?} kernel: {e}")));
            }
            pipelines.insert(kernel, pipeline);
        }
        Ok(Kernels { pipelines, threads_per_row, x_window, fusion, uniform_alignment: gpu.limits.min_uniform_buffer_offset_alignment as u64, kv_cache: gpu.kv_cache() })
    }

    /// Bytes of one cached key or value (2: f16 caches, 4: f32).
    pub fn kv_value_bytes(&self) -> usize {
        self.kv_cache.value_bytes()
    }

    /// Whether buffers passed as a matrix product's input `x` should also be usable as
    /// uniform buffers and extend X_WINDOW_BYTES past their last row, which lets CPU adapters
    /// take the fast path; without that, the product still runs, on the general kernels.
    pub fn wants_uniform_inputs(&self) -> bool {
        self.x_window
    }

    fn get(&self, kernel: Kernel) -> &wgpu::ComputePipeline {
        // Every kernel a model uses is compiled in `new` from the model's weight formats.
        &self.pipelines[&kernel]
    }
}

/// Uniform parameters of one dispatch: up to 16 words, u32 or f32 bit patterns.
#[derive(Clone, Copy, Default)]
pub struct Params([u32; 16]);

impl Params {
    pub fn new(words: &[u32]) -> Self {
        let mut p = [0u32; 16];
        p[..words.len()].copy_from_slice(words);
        Params(p)
    }
}

const PARAMS_BYTES: u64 = 64;

/// The most key ranges a decoded query's attention is split into.
const MAX_ATTENTION_SPLITS: u32 = 256;

/// Keys per split when decoding over `n_keys` keys: at most MAX_ATTENTION_SPLITS of them, a
/// whole number of tiles each, and at least `min_keys` (GPUs want many workgroups, one per
/// KV head and split; CPU adapters a few, each split costing a partial to merge).
fn attention_split_len(n_keys: u32, min_keys: u32) -> u32 {
    n_keys.div_ceil(MAX_ATTENTION_SPLITS).next_multiple_of(ATTENTION_THREADS).max(min_keys)
}

/// f32 values of the split-decoding partials buffer for a context of `ctx` keys.
pub fn attention_partials_len(heads: HeadShape, ctx: usize) -> usize {
    // A context of n_keys <= ctx splits into at most this many.
    let splits = ctx.div_ceil(ATTENTION_THREADS as usize).min(MAX_ATTENTION_SPLITS as usize);
    heads.n_head as usize * splits * (heads.head_dim as usize + 2)
}

/// How many query heads share how many key/value heads, and how wide they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadShape {
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim: u32,
}

/// Threads per head of attention_cpu.wgsl for heads of `head_dim` values: enough for four
/// vec4 output slots each (head_dim ≤ 256: 16 threads).
fn cpu_attention_threads(head_dim: u32) -> u32 {
    head_dim.div_ceil(16).next_power_of_two().clamp(CPU_ATTENTION_THREADS[0], CPU_ATTENTION_THREADS[2])
}

/// One attention_gpu.wgsl specialisation: query rows per workgroup (ROWS) and output rows per
/// thread (SLOTS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttentionTile {
    rows: u32,
    slots: u32,
}

/// The attention_gpu.wgsl tiles of a model's heads: prefill takes as many rows as the query tile holds (16, or 8
/// for heads wider than 128), decode one token's group of heads sharing a KV head.
struct AttentionTiles {
    prefill: AttentionTile,
    decode: AttentionTile,
}

impl AttentionTiles {
    fn new(heads: HeadShape) -> Self {
        let hd4 = heads.head_dim / 4;
        let row_groups = ATTENTION_THREADS / hd4;
        let tile = |rows: u32| AttentionTile { rows, slots: rows.div_ceil(row_groups) };
        let prefill_rows = ATTENTION_MAX_ROWS.min(ATTENTION_Q_TILE / hd4);
        let group = heads.n_head / heads.n_head_kv;
        AttentionTiles { prefill: tile(prefill_rows), decode: tile(group.min(prefill_rows)) }
    }
}

/// Candidates kept by GPU top-k selection (`K` in shaders/top_k.wgsl).
pub const TOP_K: u32 = 128;
/// Values each top-k workgroup sorts (`CHUNK` in shaders/top_k.wgsl).
pub const TOP_K_CHUNK: u32 = 2048;

struct Dispatch<'a> {
    kernel: Kernel,
    pipeline: &'a wgpu::ComputePipeline,
    params: Params,
    /// Bindings 1.. in order.
    buffers: Vec<wgpu::BufferBinding<'a>>,
    groups: [u32; 3],
}

/// What submissions keep between forward passes: the uniform buffer of dispatch parameters
/// and the bind groups made for it. A conversation's passes repeat the same dispatches on the
/// same buffers (every decoded token does), so after the first each bind group is reused
/// instead of made again — on the web each one is a call into the browser's GPU process.
#[derive(Default)]
pub struct SubmitCache {
    params: Option<wgpu::Buffer>,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
}

/// Everything a dispatch's bind group refers to. Holding the buffers keeps them alive, so the
/// owner clears the cache when it replaces buffers (`SubmitCache::clear`).
#[derive(PartialEq, Eq, Hash)]
struct BindKey {
    pipeline: wgpu::ComputePipeline,
    params_offset: u64,
    buffers: Vec<(wgpu::Buffer, u64, Option<wgpu::BufferSize>)>,
}

/// Bind groups kept at most; past this (prefills of many different lengths) the cache restarts.
const MAX_CACHED_BIND_GROUPS: usize = 16384;

impl SubmitCache {
    /// Forgets every bind group (and with them the buffers they hold).
    pub fn clear(&mut self) {
        self.bind_groups.clear();
    }

    pub fn cached_bind_groups(&self) -> usize {
        self.bind_groups.len()
    }
}

/// The activations a matrix product reads: rows of `buffer` from `row` on, RMS-normalised
/// first where `norm` says so.
#[derive(Clone, Copy)]
pub struct MatrixInput<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub row: u32,
    pub norm: Option<RmsNorm<'a>>,
}

/// An RMSNorm in front of a matrix product: `x / sqrt(mean(x²) + eps) * gain`, fused into the
/// product's kernel on GPUs; elsewhere run by rmsnorm.wgsl into `scratch` first.
#[derive(Clone, Copy)]
pub struct RmsNorm<'a> {
    pub gain: &'a GpuVector,
    pub eps: f32,
    pub scratch: &'a wgpu::Buffer,
}

impl<'a> MatrixInput<'a> {
    /// Rows of `buffer` from `row` on, as they are.
    pub fn rows(buffer: &'a wgpu::Buffer, row: u32) -> Self {
        MatrixInput { buffer, row, norm: None }
    }

    /// Rows of `buffer` from `row` on, RMS-normalised.
    pub fn normed(buffer: &'a wgpu::Buffer, row: u32, norm: RmsNorm<'a>) -> Self {
        MatrixInput { buffer, row, norm: Some(norm) }
    }

    /// The buffer bound as the gain of kernels that take one: the norm's, else any.
    fn gain(&self) -> &'a wgpu::Buffer {
        self.norm.map_or(self.buffer, |n| &n.gain.buffer)
    }

    fn eps_bits(&self) -> u32 {
        self.norm.map_or(0, |n| n.eps.to_bits())
    }
}

/// Collects the dispatches of one forward pass and submits them as one command buffer.
pub struct Recorder<'a> {
    kernels: &'a Kernels,
    dispatches: Vec<Dispatch<'a>>,
    max_groups: u32,
}

/// A whole buffer as a binding.
fn whole(buffer: &wgpu::Buffer) -> wgpu::BufferBinding<'_> {
    wgpu::BufferBinding { buffer, offset: 0, size: None }
}

/// Whether matvec_gpu.wgsl takes `w`: its rows are a whole number of the format's blocks.
fn gpu_matvec_fits(w: &GpuMatrix) -> bool {
    format_shaders(w.ty).is_ok_and(|f| w.cols.is_multiple_of(f.gpu.values))
}

/// Splits a 1-D count of workgroups over x and y (each dimension is limited to 65535).
fn grid(n: u32, limit: u32) -> [u32; 3] {
    if n <= limit { [n.max(1), 1, 1] } else { [limit, n.div_ceil(limit), 1] }
}

impl<'a> Recorder<'a> {
    pub fn new(gpu: &Gpu, kernels: &'a Kernels) -> Self {
        Recorder { kernels, dispatches: Vec::new(), max_groups: gpu.limits.max_compute_workgroups_per_dimension }
    }

    /// Records a dispatch binding `buffers` whole, as bindings 1, 2, ...
    fn push(&mut self, kernel: Kernel, params: Params, buffers: Vec<&'a wgpu::Buffer>, groups: [u32; 3]) {
        self.push_bindings(kernel, params, buffers.into_iter().map(whole).collect(), groups);
    }

    fn push_bindings(&mut self, kernel: Kernel, params: Params, buffers: Vec<wgpu::BufferBinding<'a>>, groups: [u32; 3]) {
        self.dispatches.push(Dispatch { kernel, pipeline: self.kernels.get(kernel), params, buffers, groups });
    }

    /// Whether the kernel that multiplies `w` by `n_tokens` tokens can normalise its input
    /// itself: the GPU kernels (MatvecGpu where the rows are whole blocks, Matmul) unless the
    /// fusion is switched off.
    fn fuses_norm(&self, w: &GpuMatrix, n_tokens: u32) -> bool {
        self.kernels.fusion && (n_tokens > 1 || gpu_matvec_fits(w))
    }

    /// `x` as the products by every matrix of `weights` can read it: as it is where their
    /// kernels all normalise as they read (or no norm is asked for); otherwise normalised once
    /// by rmsnorm.wgsl into the norm's scratch buffer, which is then the input.
    pub fn prepare_input<'w>(&mut self, x: MatrixInput<'a>, n_tokens: u32, weights: impl IntoIterator<Item = &'w GpuMatrix>) -> MatrixInput<'a> {
        match x.norm {
            Some(norm) if !weights.into_iter().all(|w| self.fuses_norm(w, n_tokens)) => {
                self.rms_norm(x.buffer, x.row, n_tokens, norm.gain, norm.eps, norm.scratch);
                MatrixInput::rows(norm.scratch, 0)
            }
            _ => x,
        }
    }

    /// `y[t, out_offset + r] (+)= W[r, :] · x[t, :]` for `n_tokens` tokens: matvec for
    /// one token; for more, the tiled matmul on GPUs, blocks of matvec on CPU-emulated adapters;
    /// once per row chunk of `w`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(&mut self, w: &'a GpuMatrix, x: MatrixInput<'a>, n_tokens: u32, y: &'a wgpu::Buffer, out_stride: u32, out_offset: u32, accumulate: bool) {
        let x = self.prepare_input(x, n_tokens, [w]);
        if self.matmul_by_windows(w, x, n_tokens, y, out_stride, out_offset, accumulate, 0) {
            return;
        }
        if n_tokens == 1 && self.matvec_gpu(w, x, y, out_offset, accumulate, 0) {
            return;
        }
        for chunk in &w.chunks {
            let params = Params::new(&[w.cols, chunk.scale_offset, chunk.rows, n_tokens, out_stride, out_offset + chunk.row_start, accumulate as u32, x.row, x.eps_bits()]);
            let row_groups = chunk.rows.div_ceil(MATVEC_WORKGROUP / self.kernels.threads_per_row);
            if n_tokens == 1 {
                self.push(Kernel::Matvec(w.ty), params, vec![&chunk.buffer, x.buffer, y], grid(row_groups, self.max_groups));
            } else if self.kernels.threads_per_row == 1 {
                let [gx, gy, _] = grid(row_groups, self.max_groups);
                self.push(Kernel::MatvecBlock(w.ty), params, vec![&chunk.buffer, x.buffer, y], [gx, gy, n_tokens.div_ceil(PREFILL_TOKENS_PER_BLOCK)]);
            } else {
                let kernel = if x.norm.is_some() { Kernel::NormedMatmul(w.ty) } else { Kernel::Matmul(w.ty) };
                self.push(kernel, params, vec![&chunk.buffer, x.buffer, y, x.gain()], [chunk.rows.div_ceil(MATMUL_TILE), n_tokens.div_ceil(MATMUL_TILE), 1]);
            }
        }
    }

    /// The feed-forward block's gated activation `act[t, :] = silu(gate) * up`, where
    /// `[gate | up] = W x[t]` comes from `parts` (gate rows into columns `[0, n_ff)`, up rows
    /// after). Where one matrix holds both halves, the matrix kernel applies the gate as it
    /// writes (decoding on GPUs, every pass on CPU adapters): one dispatch, and `gate_up` is
    /// not touched. Otherwise the products go to `gate_up` and silu_gate.wgsl follows.
    pub fn gated_ffn_input(&mut self, parts: &'a [Projection], x: MatrixInput<'a>, n_tokens: u32, n_ff: u32, gate_up: &'a wgpu::Buffer, act: &'a wgpu::Buffer) {
        let x = self.prepare_input(x, n_tokens, parts.iter().map(|p| &p.weight));
        if let [only] = parts
            && only.out_offset == 0
            && only.weight.rows == 2 * n_ff
            && only.weight.chunks.len() == 1
            && (self.matmul_by_windows(&only.weight, x, n_tokens, act, n_ff, 0, false, n_ff) || (n_tokens == 1 && self.matvec_gpu(&only.weight, x, act, 0, false, n_ff)))
        {
            return;
        }
        for p in parts {
            self.matmul(&p.weight, x, n_tokens, gate_up, 2 * n_ff, p.out_offset, false);
        }
        self.silu_gate(n_ff, n_tokens, gate_up, act);
    }

    /// `matmul` of one token on GPUs through `MatvecGpu`, normalising the input as it reads
    /// where `x` asks for it; with `glu` > 0 the gated activation of its first `glu` rows by
    /// the next `glu` (matvec_gpu.wgsl). Returns false, recording nothing, on CPU adapters and
    /// where the row length is not a whole number of blocks.
    #[allow(clippy::too_many_arguments)]
    fn matvec_gpu(&mut self, w: &'a GpuMatrix, x: MatrixInput<'a>, y: &'a wgpu::Buffer, out_offset: u32, accumulate: bool, glu: u32) -> bool {
        let threads = self.kernels.threads_per_row;
        if threads == 1 || !gpu_matvec_fits(w) {
            return false;
        }
        let rows_per_group = GPU_MATVEC_ROWS * (MATVEC_WORKGROUP / threads);
        let kernel = if x.norm.is_some() { Kernel::NormedMatvecGpu(w.ty) } else { Kernel::MatvecGpu(w.ty) };
        for chunk in &w.chunks {
            let rows = if glu > 0 { glu } else { chunk.rows };
            let params = Params::new(&[w.cols, chunk.scale_offset, rows, out_offset + chunk.row_start, accumulate as u32, x.row, glu, x.eps_bits()]);
            // The weights twice: as u32 words and as vec4 of them.
            let buffers = vec![whole(&chunk.buffer), whole(x.buffer), whole(y), whole(&chunk.buffer), whole(x.gain())];
            self.push_bindings(kernel, params, buffers, grid(rows.div_ceil(rows_per_group), self.max_groups));
        }
        true
    }

    /// `matmul` on CPU adapters through `MatvecCpu`: the tokens and the k range are cut into
    /// windows of at most X_WINDOW_BYTES of `x`, one dispatch each (later k slices add to the
    /// first). With `glu` > 0, the gated activation of the first `glu` rows by the next `glu`
    /// (one k slice only). Returns false, recording nothing, where `x` cannot be windowed.
    #[allow(clippy::too_many_arguments)]
    fn matmul_by_windows(&mut self, w: &'a GpuMatrix, x: MatrixInput<'a>, n_tokens: u32, y: &'a wgpu::Buffer, out_stride: u32, out_offset: u32, accumulate: bool, glu: u32) -> bool {
        let k = w.cols;
        // CPU adapters' inputs come normalised already (prepare_input).
        if n_tokens == 0 || x.norm.is_some() {
            return false;
        }
        let MatrixInput { buffer: x, row: x_row, .. } = x;
        // matvec_cpu.wgsl's threads take rows a stride apart: with glu, each gate row's up row
        // must fall to the same thread, and one pass must see the whole row.
        if glu > 0 && (k > X_WINDOW_VALUES || !w.rows.is_multiple_of(cpu_rows_per_thread(w.ty))) {
            return false;
        }
        let row_bytes = k as u64 * 4;
        // Windows start at token rows and at k slices of X_WINDOW_VALUES, whose offsets must
        // be aligned for uniform bindings; the last window must lie inside the buffer.
        let last_start = (x_row + n_tokens - 1) as u64 * row_bytes + (k.saturating_sub(1) / X_WINDOW_VALUES * X_WINDOW_VALUES) as u64 * 4;
        let usable = self.kernels.x_window
            && x.usage().contains(wgpu::BufferUsages::UNIFORM)
            && row_bytes.is_multiple_of(self.kernels.uniform_alignment)
            && X_WINDOW_BYTES.is_multiple_of(self.kernels.uniform_alignment)
            // The kernel steps over whole blocks.
            && format_shaders(w.ty).is_ok_and(|f| k.is_multiple_of(f.cpu.values))
            && last_start + X_WINDOW_BYTES <= x.size();
        if !usable {
            return false;
        }
        let tokens_per_window = (X_WINDOW_VALUES / k).max(1);
        let slice = k.min(X_WINDOW_VALUES);
        for chunk in &w.chunks {
            let groups = grid(chunk.rows.div_ceil(cpu_rows_per_thread(w.ty)).div_ceil(CPU_MATVEC_WORKGROUP), self.max_groups);
            for t0 in (0..n_tokens).step_by(tokens_per_window as usize) {
                let tokens = tokens_per_window.min(n_tokens - t0);
                for k_begin in (0..k).step_by(slice as usize) {
                    let window = wgpu::BufferBinding {
                        buffer: x,
                        offset: (x_row + t0) as u64 * row_bytes + k_begin as u64 * 4,
                        size: wgpu::BufferSize::new(X_WINDOW_BYTES),
                    };
                    let add = accumulate || k_begin > 0;
                    let out = out_offset + chunk.row_start + t0 * out_stride;
                    let params = Params::new(&[k, chunk.scale_offset, chunk.rows, tokens, out_stride, out, add as u32, k_begin, slice.min(k - k_begin), glu]);
                    // The weights twice: as u32 words and as vec4 of them (matvec_cpu.wgsl).
                    let buffers = vec![whole(&chunk.buffer), window, whole(y), whole(&chunk.buffer)];
                    self.push_bindings(Kernel::MatvecCpu(w.ty), params, buffers, groups);
                }
            }
        }
        true
    }

    /// `out[t, :] = embedding[tokens[t], :]`.
    pub fn embed(&mut self, w: &'a GpuMatrix, tokens: &'a wgpu::Buffer, n_tokens: u32, out: &'a wgpu::Buffer) {
        for chunk in &w.chunks {
            let params = Params::new(&[w.cols, chunk.scale_offset, chunk.rows, n_tokens, chunk.row_start]);
            self.push(Kernel::Embed(w.ty), params, vec![&chunk.buffer, tokens, out], [(w.cols / 8).div_ceil(64), n_tokens, 1]);
        }
    }

    /// `out[r, :] = rmsnorm(x[x_row + r, :]) * weight` for `n_rows` rows.
    #[allow(clippy::too_many_arguments)]
    pub fn rms_norm(&mut self, x: &'a wgpu::Buffer, x_row: u32, n_rows: u32, weight: &'a GpuVector, eps: f32, out: &'a wgpu::Buffer) {
        let params = Params::new(&[weight.len, x_row, eps.to_bits()]);
        self.push(Kernel::RmsNorm, params, vec![x, &weight.buffer, out], [n_rows, 1, 1]);
    }

    /// RoPE on `n_tokens` fresh queries and keys in `qkv` (queries rotated in place), keys and
    /// values stored in the caches at positions `pos0..`.
    #[allow(clippy::too_many_arguments)]
    pub fn rope_kv(&mut self, rope: &RopeShape, pos0: u32, n_tokens: u32, qkv: &'a wgpu::Buffer, freq: &'a GpuVector, k_cache: &'a wgpu::Buffer, v_cache: &'a wgpu::Buffer) {
        let params = Params::new(&[&[pos0, rope.n_head, rope.n_head_kv, rope.head_dim, rope.qkv_stride][..], &rope.rotation_words()].concat());
        self.push(Kernel::RopeKv, params, vec![qkv, &freq.buffer, k_cache, v_cache], [n_tokens, rope.n_head + 2 * rope.n_head_kv, 1]);
    }

    /// Causal attention of `n_tokens` queries at positions `pos0..` over the cache: on GPUs
    /// one workgroup per KV head and tile of query rows, on CPU adapters one per query head
    /// and token. A single query with a long history is split over key ranges (one workgroup
    /// each, merged by a second kernel) so that decoding stays parallel at long context;
    /// `partials` holds `attention_partials_len` f32.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(&mut self, rope: &RopeShape, pos0: u32, n_tokens: u32, qkv: &'a wgpu::Buffer, k_cache: &'a wgpu::Buffer, v_cache: &'a wgpu::Buffer, out: &'a wgpu::Buffer, partials: &'a wgpu::Buffer) {
        self.attention_rotating(rope, None, pos0, n_tokens, qkv, k_cache, v_cache, out, partials);
    }

    /// `rope_kv` then `attention`: the fresh tokens' queries and keys rotated, their keys and
    /// values stored, then their attention over the cache. On GPUs a decoded token takes one
    /// dispatch (attention_gpu.wgsl rotates and stores it itself, leaving `qkv` as it is).
    #[allow(clippy::too_many_arguments)]
    pub fn rope_attention(&mut self, rope: &RopeShape, freq: &'a GpuVector, pos0: u32, n_tokens: u32, qkv: &'a wgpu::Buffer, k_cache: &'a wgpu::Buffer, v_cache: &'a wgpu::Buffer, out: &'a wgpu::Buffer, partials: &'a wgpu::Buffer) {
        if self.kernels.fusion && n_tokens == 1 {
            self.attention_rotating(rope, Some(freq), pos0, n_tokens, qkv, k_cache, v_cache, out, partials);
        } else {
            self.rope_kv(rope, pos0, n_tokens, qkv, freq, k_cache, v_cache);
            self.attention(rope, pos0, n_tokens, qkv, k_cache, v_cache, out, partials);
        }
    }

    /// `attention`, rotating one decoded token and storing its key and value first where
    /// `freq` is given (GPU kernels only).
    #[allow(clippy::too_many_arguments)]
    fn attention_rotating(&mut self, rope: &RopeShape, freq: Option<&'a GpuVector>, pos0: u32, n_tokens: u32, qkv: &'a wgpu::Buffer, k_cache: &'a wgpu::Buffer, v_cache: &'a wgpu::Buffer, out: &'a wgpu::Buffer, partials: &'a wgpu::Buffer) {
        let scale = 1.0 / (rope.head_dim as f32).sqrt();
        let n_keys = pos0 + n_tokens;
        let cpu = self.kernels.threads_per_row == 1;
        let split_len = attention_split_len(n_keys, if cpu { CPU_ATTENTION_SPLIT } else { ATTENTION_THREADS });
        let n_splits = if n_tokens == 1 { n_keys.div_ceil(split_len) } else { 1 };
        let split_len = if n_splits > 1 { split_len } else { 0 };
        let params = Params::new(&[&[pos0, rope.n_head, rope.n_head_kv, rope.head_dim, rope.qkv_stride, scale.to_bits(), split_len, n_splits, n_tokens, freq.is_some() as u32][..], &rope.rotation_words()].concat());
        let mut buffers = vec![qkv, k_cache, v_cache, out, partials];
        if cpu {
            self.push(Kernel::AttentionCpu(cpu_attention_threads(rope.head_dim)), params, buffers, [rope.n_head, n_tokens, n_splits]);
        } else {
            // The frequencies, or any read-only buffer where nothing is rotated.
            buffers.push(freq.map_or(qkv, |f| &f.buffer));
            let tiles = AttentionTiles::new(rope.heads());
            let tile = if n_tokens == 1 { tiles.decode } else { tiles.prefill };
            let row_tiles = (n_tokens * (rope.n_head / rope.n_head_kv)).div_ceil(tile.rows);
            self.push(Kernel::AttentionGpu(tile), params, buffers, [rope.n_head_kv, row_tiles, n_splits]);
        }
        if n_splits > 1 {
            self.push(Kernel::AttentionCombine, Params::new(&[rope.head_dim, n_splits]), vec![partials, out], [rope.n_head, 1, 1]);
        }
    }

    pub fn silu_gate(&mut self, n_ff: u32, n_tokens: u32, gate_up: &'a wgpu::Buffer, out: &'a wgpu::Buffer) {
        self.push(Kernel::SiluGate, Params::new(&[n_ff, n_tokens]), vec![gate_up, out], [n_ff.div_ceil(64), n_tokens, 1]);
    }

    pub fn argmax(&mut self, logits: &'a wgpu::Buffer, n: u32, result: &'a wgpu::Buffer) {
        // The logits twice: as f32 and as vec4 of them (argmax.wgsl).
        self.push(Kernel::Argmax, Params::new(&[n]), vec![logits, result, logits], [1, 1, 1]);
    }

    /// Applies repetition/frequency/presence penalties and logit bias in place; `entries`
    /// holds `n_entries` (token, count, bias bits, 0) records, each token once.
    pub fn penalize(&mut self, logits: &'a wgpu::Buffer, entries: &'a wgpu::Buffer, n_entries: u32, repeat: f32, frequency: f32, presence: f32) {
        if n_entries == 0 {
            return;
        }
        let params = Params::new(&[n_entries, repeat.to_bits(), frequency.to_bits(), presence.to_bits()]);
        self.push(Kernel::Penalize, params, vec![logits, entries], [n_entries.div_ceil(64), 1, 1]);
    }

    /// Reduces `logits[0..n)` to its `TOP_K` largest (value, token) pairs, sorted descending,
    /// in rounds that ping-pong between the two scratch pairs. Returns the pair holding them.
    pub fn top_k(&mut self, logits: &'a wgpu::Buffer, n: u32, scratch: &'a [(wgpu::Buffer, wgpu::Buffer); 2]) -> &'a (wgpu::Buffer, wgpu::Buffer) {
        let mut n = n;
        let mut round = 0usize;
        loop {
            let out = &scratch[round % 2];
            let (values, indices) = if round == 0 { (logits, logits) } else { (&scratch[(round + 1) % 2].0, &scratch[(round + 1) % 2].1) };
            let chunks = n.div_ceil(TOP_K_CHUNK);
            self.push(Kernel::TopK, Params::new(&[n, (round == 0) as u32]), vec![values, indices, &out.0, &out.1], [chunks, 1, 1]);
            if chunks == 1 {
                return out;
            }
            n = chunks * TOP_K;
            round += 1;
        }
    }

    /// Encodes every dispatch into one compute pass, lets `after` append copies (read-backs),
    /// and submits once. `cache` keeps the parameter buffer (grown when needed) and the bind
    /// groups across calls.
    pub fn submit(self, gpu: &Gpu, cache: &mut SubmitCache, after: impl FnOnce(&mut wgpu::CommandEncoder)) -> wgpu::SubmissionIndex {
        let stride = (gpu.limits.min_uniform_buffer_offset_alignment as u64).max(PARAMS_BYTES);
        let needed = stride * self.dispatches.len().max(1) as u64;
        if cache.params.as_ref().is_none_or(|b| b.size() < needed) {
            cache.bind_groups.clear();
            cache.params = Some(gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("dispatch params"),
                size: needed.next_power_of_two(),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        if cache.bind_groups.len() + self.dispatches.len() > MAX_CACHED_BIND_GROUPS {
            cache.bind_groups.clear();
        }
        let params = cache.params.clone().expect("created above");
        let mut bytes = vec![0u8; needed as usize];
        for (i, d) in self.dispatches.iter().enumerate() {
            let at = i * stride as usize;
            bytes[at..at + PARAMS_BYTES as usize].copy_from_slice(bytemuck::cast_slice(&d.params.0));
        }
        gpu.queue.write_buffer(&params, 0, &bytes);

        let bind_groups: Vec<wgpu::BindGroup> = self
            .dispatches
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let key = BindKey {
                    pipeline: d.pipeline.clone(),
                    params_offset: i as u64 * stride,
                    buffers: d.buffers.iter().map(|b| (b.buffer.clone(), b.offset, b.size)).collect(),
                };
                cache
                    .bind_groups
                    .entry(key)
                    .or_insert_with(|| {
                        let mut entries = vec![wgpu::BindGroupEntry {
                            binding: 0,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: &params, offset: i as u64 * stride, size: wgpu::BufferSize::new(PARAMS_BYTES) }),
                        }];
                        entries.extend(d.buffers.iter().enumerate().map(|(j, b)| wgpu::BindGroupEntry { binding: j as u32 + 1, resource: wgpu::BindingResource::Buffer(b.clone()) }));
                        gpu.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &d.pipeline.get_bind_group_layout(0), entries: &entries })
                    })
                    .clone()
            })
            .collect();

        let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        if gpu.is_profiling() {
            self.encode_timed(gpu, &mut encoder, &bind_groups);
        } else {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
            for (d, bg) in self.dispatches.iter().zip(&bind_groups) {
                pass.set_pipeline(d.pipeline);
                pass.set_bind_group(0, bg, &[]);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
            }
        }
        after(&mut encoder);
        gpu.queue.submit([encoder.finish()])
    }

    /// Profiling: each dispatch in its own pass between two timestamps, resolved into a
    /// buffer that `Gpu::take_profile` reads back later.
    fn encode_timed(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, bind_groups: &[wgpu::BindGroup]) {
        // A query set holds at most 4096 queries: two per dispatch.
        const DISPATCHES_PER_SET: usize = 2048;
        let n = self.dispatches.len();
        let resolved = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: (n.max(1) * 16) as u64,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps read-back"),
            size: resolved.size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        for (set_index, first) in (0..n).step_by(DISPATCHES_PER_SET).enumerate() {
            let count = DISPATCHES_PER_SET.min(n - first);
            let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("timestamps"), ty: wgpu::QueryType::Timestamp, count: (2 * count) as u32 });
            for i in 0..count {
                let (d, bg) = (&self.dispatches[first + i], &bind_groups[first + i]);
                let timestamp_writes = wgpu::ComputePassTimestampWrites { query_set: &set, beginning_of_pass_write_index: Some(2 * i as u32), end_of_pass_write_index: Some(2 * i as u32 + 1) };
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("profiled"), timestamp_writes: Some(timestamp_writes) });
                pass.set_pipeline(d.pipeline);
                pass.set_bind_group(0, bg, &[]);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
            }
            encoder.resolve_query_set(&set, 0..(2 * count) as u32, &resolved, (set_index * DISPATCHES_PER_SET * 16) as u64);
        }
        encoder.copy_buffer_to_buffer(&resolved, 0, &readback, 0, resolved.size());
        let kernels = self.dispatches.iter().map(|d| format!("{:?}", d.kernel)).collect();
        gpu.add_pending_profile(crate::profile::PendingProfile { buffer: readback, kernels });
    }
}

/// The attention geometry RoPE and attention kernels need.
#[derive(Clone, Copy, Debug)]
pub struct RopeShape {
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim: u32,
    pub n_rot: u32,
    pub qkv_stride: u32,
    pub neox: bool,
    pub base: f32,
    pub freq_scale: f32,
    pub attn_factor: f32,
}

impl RopeShape {
    pub fn heads(&self) -> HeadShape {
        HeadShape { n_head: self.n_head, n_head_kv: self.n_head_kv, head_dim: self.head_dim }
    }

    /// The rotation as the kernels' parameters hold it (n_rot, neox, log2_base, freq_scale,
    /// attn_factor: `Rope` in shaders/rope_common.wgsl).
    fn rotation_words(&self) -> [u32; 5] {
        [self.n_rot, self.neox as u32, self.base.log2().to_bits(), self.freq_scale.to_bits(), self.attn_factor.to_bits()]
    }
}
