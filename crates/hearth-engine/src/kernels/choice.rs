//! Which kernel computes what: the one place that turns what the adapter is (its
//! [`Tuning`]) and what is being computed (a matrix's format and shape, the tokens, the
//! input's buffer) into a kernel. Nothing else asks what kind of adapter it runs on.

use super::record::MatrixInput;
use super::source::{
    ATTENTION_MAX_ROWS, ATTENTION_Q_TILE, ATTENTION_THREADS, AttentionTile, Kernel, X_WINDOW_BYTES,
    X_WINDOW_VALUES, format_shaders,
};
use crate::gpu::{AdapterKind, Gpu, Tuning};
use crate::weights::GpuMatrix;
use hearth_gguf::GgmlType;

/// Threads per head of attention_cpu.wgsl: the fewest that give each thread at most four vec4
/// output slots (every thread there re-reads each tile's scores, and SwiftShader runs a
/// workgroup's lanes 4 at a time, switching between them at barriers).
const CPU_ATTENTION_THREADS: [u32; 3] = [4, 8, 16];
/// Fewest keys per decode split on CPU adapters, where two cores need few workgroups.
const CPU_ATTENTION_SPLIT: u32 = 256;
/// The most key ranges a decoded query's attention is split into.
const MAX_ATTENTION_SPLITS: u32 = 256;
/// Threads of the one-workgroup reductions (rmsnorm.wgsl, argmax.wgsl) on CPU adapters, where
/// a barrier costs a switch between every 4 lanes.
const CPU_REDUCTION_THREADS: u32 = 4;
/// Tokens each workgroup of matvec.wgsl multiplies a weight into, for prefill on CPU adapters
/// whose input has no uniform window.
const CPU_PREFILL_TOKENS: u32 = 8;

/// How one matrix product is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatrixKernel {
    /// matvec_gpu.wgsl: one token on a GPU, rows of whole blocks; can normalise its input and
    /// apply the feed-forward gate.
    GpuMatvec,
    /// matmul.wgsl: several tokens on a GPU; can normalise its input.
    GpuTiles,
    /// matvec_cpu.wgsl: CPU adapters, activations read through uniform windows; can apply
    /// the gate.
    CpuWindows,
    /// matvec.wgsl over blocks of tokens: CPU adapters, several tokens, an input without a
    /// uniform window.
    CpuBlocks,
    /// matvec.wgsl, one token: what the block-wise kernels cannot take.
    General,
}

/// How attention runs for one dispatch's queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionPlan {
    pub kernel: Kernel,
    /// Keys per split (0: one split over all keys) and the number of splits.
    pub split_len: u32,
    pub n_splits: u32,
    /// Query rows a workgroup takes (attention_gpu.wgsl); 1 on CPU adapters.
    pub rows_per_group: u32,
}

/// How many query heads share how many key/value heads, and how wide they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadShape {
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim: u32,
}

/// The kernel choices for one device, fixed when a model's kernels compile.
#[derive(Clone, Copy, Debug)]
pub struct KernelChoice {
    tuning: Tuning,
    /// Whether CPU adapters can read matrix inputs through uniform windows: their uniform
    /// bindings reach X_WINDOW_BYTES.
    x_window: bool,
    /// Offsets of uniform bindings are multiples of this.
    uniform_alignment: u64,
}

impl KernelChoice {
    pub fn new(gpu: &Gpu) -> Self {
        let tuning = gpu.tuning();
        let x_window = !tuning.adapter.is_gpu()
            && gpu.limits.max_uniform_buffer_binding_size >= X_WINDOW_BYTES;
        let uniform_alignment = gpu.limits.min_uniform_buffer_offset_alignment as u64;
        KernelChoice {
            tuning,
            x_window,
            uniform_alignment,
        }
    }

    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    /// Whether buffers given as a matrix product's input should also be usable as uniform
    /// buffers and extend X_WINDOW_BYTES past their last row, which lets CPU adapters take
    /// their fast kernel; without that, the product still runs, on the general kernels.
    pub fn wants_uniform_inputs(&self) -> bool {
        self.x_window
    }

    /// Every kernel a model needs: the generic ones, the matrix kernels for each weight
    /// format, and attention for heads of `heads`' shape.
    pub fn kernels_needed(
        &self,
        formats: impl IntoIterator<Item = GgmlType>,
        heads: Option<HeadShape>,
    ) -> Vec<Kernel> {
        let mut wanted = vec![
            self.rms_norm(),
            Kernel::RopeKv,
            Kernel::Gate,
            self.argmax(),
            Kernel::Penalize,
            Kernel::Mask,
            Kernel::TopK,
            Kernel::AttentionCombine,
        ];
        if let Some(heads) = heads {
            // Small enough to compile for every model, needed by some (Qwen 2 and 3).
            wanted.extend([Kernel::QkvBias, self.head_norm()]);
            match self.tuning.adapter {
                AdapterKind::CpuEmulated => wanted.push(Kernel::AttentionCpu {
                    threads: cpu_attention_threads(heads),
                }),
                AdapterKind::Gpu { .. } => {
                    let tiles = AttentionTiles::new(heads);
                    wanted.extend([tiles.prefill, tiles.decode].map(Kernel::AttentionGpu));
                }
            }
        }
        for ty in formats {
            let mut matrix = vec![self.general_matvec(ty, 1), Kernel::Embed(ty)];
            match self.tuning.adapter {
                AdapterKind::CpuEmulated => {
                    matrix.push(self.cpu_prefill_matvec(ty));
                    if self.x_window {
                        matrix.push(self.cpu_matvec(ty));
                    }
                }
                AdapterKind::Gpu { .. } => {
                    let fused = if self.tuning.fuses() {
                        &[false, true][..]
                    } else {
                        &[false]
                    };
                    for &normed in fused {
                        matrix.push(self.gpu_matvec(ty, normed));
                        matrix.push(Kernel::Matmul { ty, normed });
                    }
                }
            }
            for k in matrix {
                if !wanted.contains(&k) {
                    wanted.push(k);
                }
            }
        }
        wanted
    }

    /// The kernel for `w` × `n_tokens` rows of `x` (before any RMSNorm of x is decided: see
    /// `fuses_norm`).
    pub fn matrix(&self, w: &GpuMatrix, x: &MatrixInput, n_tokens: u32) -> MatrixKernel {
        match self.tuning.adapter {
            AdapterKind::Gpu { .. } if n_tokens > 1 => MatrixKernel::GpuTiles,
            AdapterKind::Gpu { .. } if whole_blocks(w, Block::Gpu) => MatrixKernel::GpuMatvec,
            AdapterKind::Gpu { .. } => MatrixKernel::General,
            AdapterKind::CpuEmulated if self.windows_fit(w, x, n_tokens) => {
                MatrixKernel::CpuWindows
            }
            AdapterKind::CpuEmulated if n_tokens > 1 => MatrixKernel::CpuBlocks,
            AdapterKind::CpuEmulated => MatrixKernel::General,
        }
    }

    /// The kernel that computes the gated activation `silu(W[:n_ff] x) * (W[n_ff..] x)` of a
    /// stacked [gate | up] matrix in one pass, if one can: matvec_gpu.wgsl for one token,
    /// matvec_cpu.wgsl where each thread's rows pair gate with up rows and one window holds a
    /// whole row. `None`: the products and gate.wgsl.
    pub fn gated_matrix(
        &self,
        w: &GpuMatrix,
        x: &MatrixInput,
        n_tokens: u32,
    ) -> Option<MatrixKernel> {
        if w.chunks.len() != 1 {
            return None;
        }
        match self.matrix(w, x, n_tokens) {
            MatrixKernel::GpuMatvec => Some(MatrixKernel::GpuMatvec),
            MatrixKernel::CpuWindows
                if w.cols <= X_WINDOW_VALUES
                    && w.rows.is_multiple_of(cpu_rows_per_thread(w.ty)) =>
            {
                Some(MatrixKernel::CpuWindows)
            }
            _ => None,
        }
    }

    /// Whether `kernel` RMS-normalises its input as it reads it (GPU kernels, fusion on).
    pub fn fuses_norm(&self, kernel: MatrixKernel) -> bool {
        self.tuning.fuses() && matches!(kernel, MatrixKernel::GpuMatvec | MatrixKernel::GpuTiles)
    }

    /// Whether a decoded token's RoPE and KV-cache store run inside attention (GPU kernels,
    /// fusion on); otherwise rope_kv.wgsl runs first.
    pub fn fuses_rope(&self, n_tokens: u32) -> bool {
        self.tuning.fuses() && n_tokens == 1
    }

    /// matvec.wgsl for `tokens` tokens per workgroup.
    pub fn general_matvec(&self, ty: GgmlType, tokens: u32) -> Kernel {
        Kernel::Matvec {
            ty,
            threads_per_row: self.lanes(),
            tokens,
        }
    }

    /// matvec.wgsl for several tokens on a CPU adapter.
    pub fn cpu_prefill_matvec(&self, ty: GgmlType) -> Kernel {
        self.general_matvec(ty, CPU_PREFILL_TOKENS)
    }

    /// matvec_gpu.wgsl for `ty`, normalising its input where `normed`.
    pub fn gpu_matvec(&self, ty: GgmlType, normed: bool) -> Kernel {
        Kernel::MatvecGpu {
            ty,
            lanes: self.lanes(),
            normed,
        }
    }

    /// Threads that share a matrix row (or a GPU's group of four rows): a GPU's lanes, or one
    /// on CPU adapters, where SIMD lanes work best on separate rows.
    fn lanes(&self) -> u32 {
        match self.tuning.adapter {
            AdapterKind::Gpu { matvec_lanes } => matvec_lanes,
            AdapterKind::CpuEmulated => 1,
        }
    }

    /// matvec_cpu.wgsl for `ty`.
    pub fn cpu_matvec(&self, ty: GgmlType) -> Kernel {
        Kernel::MatvecCpu {
            ty,
            rows_per_thread: cpu_rows_per_thread(ty),
        }
    }

    /// rmsnorm.wgsl: few threads on CPU adapters, where a barrier costs a switch between every
    /// 4 lanes.
    pub fn rms_norm(&self) -> Kernel {
        Kernel::RmsNorm {
            threads: self.reduction_threads(64),
        }
    }

    /// head_norm.wgsl, likewise.
    pub fn head_norm(&self) -> Kernel {
        Kernel::HeadNorm {
            threads: self.reduction_threads(64),
        }
    }

    /// argmax.wgsl, likewise.
    pub fn argmax(&self) -> Kernel {
        Kernel::Argmax {
            threads: self.reduction_threads(256),
        }
    }

    fn reduction_threads(&self, on_gpu: u32) -> u32 {
        if self.tuning.adapter.is_gpu() {
            on_gpu
        } else {
            CPU_REDUCTION_THREADS
        }
    }

    /// Attention for `n_tokens` queries over `n_keys` keys: on GPUs one workgroup per KV head
    /// and tile of query rows, on CPU adapters one per query head and token. A single query
    /// with a long history is split over key ranges (one workgroup each, merged by
    /// attention_combine.wgsl), so that decoding stays parallel at long context.
    pub fn attention(&self, heads: HeadShape, n_tokens: u32, n_keys: u32) -> AttentionPlan {
        let (kernel, rows_per_group, min_split) = match self.tuning.adapter {
            AdapterKind::CpuEmulated => {
                let kernel = Kernel::AttentionCpu {
                    threads: cpu_attention_threads(heads),
                };
                (kernel, 1, CPU_ATTENTION_SPLIT)
            }
            AdapterKind::Gpu { .. } => {
                let tiles = AttentionTiles::new(heads);
                let tile = if n_tokens == 1 {
                    tiles.decode
                } else {
                    tiles.prefill
                };
                (Kernel::AttentionGpu(tile), tile.rows, ATTENTION_THREADS)
            }
        };
        let split_len = attention_split_len(n_keys, min_split);
        let n_splits = if n_tokens == 1 {
            n_keys.div_ceil(split_len)
        } else {
            1
        };
        let split_len = if n_splits > 1 { split_len } else { 0 };
        AttentionPlan {
            kernel,
            split_len,
            n_splits,
            rows_per_group,
        }
    }

    /// Whether matvec_cpu.wgsl can read `x` through uniform windows: the adapter's uniform
    /// bindings reach a window, `x` is usable as one and extends a window past its last
    /// row, the windows' offsets are aligned, and rows are whole blocks of the format.
    fn windows_fit(&self, w: &GpuMatrix, x: &MatrixInput, n_tokens: u32) -> bool {
        let k = w.cols;
        let row_bytes = k as u64 * 4;
        // Windows start at token rows and at k slices of X_WINDOW_VALUES; the last window must
        // lie inside the buffer.
        let last_start = (x.row + n_tokens - 1) as u64 * row_bytes
            + (k.saturating_sub(1) / X_WINDOW_VALUES * X_WINDOW_VALUES) as u64 * 4;
        self.x_window
            && n_tokens > 0
            && x.norm.is_none()
            && x.buffer.usage().contains(wgpu::BufferUsages::UNIFORM)
            && row_bytes.is_multiple_of(self.uniform_alignment)
            && X_WINDOW_BYTES.is_multiple_of(self.uniform_alignment)
            && whole_blocks(w, Block::Cpu)
            && last_start + X_WINDOW_BYTES <= x.buffer.size()
    }
}

/// Which of a format's block sizes a kernel steps over.
#[derive(Clone, Copy)]
enum Block {
    Cpu,
    Gpu,
}

/// Whether `w`'s rows are a whole number of the block-wise kernel's blocks.
fn whole_blocks(w: &GpuMatrix, block: Block) -> bool {
    format_shaders(w.ty).is_ok_and(|f| {
        let values = match block {
            Block::Cpu => f.cpu.values,
            Block::Gpu => f.gpu.values,
        };
        w.cols.is_multiple_of(values)
    })
}

/// Rows each thread of matvec_cpu.wgsl computes: one read of a block's activations serves
/// them all. Sixteen for the small quantized blocks, eight for the rest, whose wider values
/// or 256-value blocks fill the registers.
pub(crate) fn cpu_rows_per_thread(ty: GgmlType) -> u32 {
    if matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0) {
        16
    } else {
        8
    }
}

/// Threads per head of attention_cpu.wgsl for heads of `head_dim` values: enough for four
/// vec4 output slots each (head_dim ≤ 256: 16 threads).
fn cpu_attention_threads(heads: HeadShape) -> u32 {
    let [fewest, _, most] = CPU_ATTENTION_THREADS;
    heads
        .head_dim
        .div_ceil(16)
        .next_power_of_two()
        .clamp(fewest, most)
}

/// Keys per split when decoding over `n_keys` keys: at most MAX_ATTENTION_SPLITS of them, a
/// whole number of tiles each, and at least `min_keys` (GPUs want many workgroups, one per
/// KV head and split; CPU adapters a few, each split costing a partial to merge).
fn attention_split_len(n_keys: u32, min_keys: u32) -> u32 {
    n_keys
        .div_ceil(MAX_ATTENTION_SPLITS)
        .next_multiple_of(ATTENTION_THREADS)
        .max(min_keys)
}

/// f32 values of the split-decoding partials buffer for a context of `ctx` keys:
/// (n_head, splits, head_dim + 2).
pub fn attention_partials_len(heads: HeadShape, ctx: usize) -> usize {
    // A context of n_keys <= ctx splits into at most this many.
    let splits = ctx
        .div_ceil(ATTENTION_THREADS as usize)
        .min(MAX_ATTENTION_SPLITS as usize);
    heads.n_head as usize * splits * (heads.head_dim as usize + 2)
}

/// The attention_gpu.wgsl tiles of a model's heads: prefill takes as many rows as the query
/// tile holds (16, or 8 for heads wider than 128), decode one token's group of heads sharing
/// a KV head.
struct AttentionTiles {
    prefill: AttentionTile,
    decode: AttentionTile,
}

impl AttentionTiles {
    fn new(heads: HeadShape) -> Self {
        let hd4 = heads.head_dim / 4;
        let row_groups = ATTENTION_THREADS / hd4;
        let tile = |rows: u32| AttentionTile {
            rows,
            slots: rows.div_ceil(row_groups),
        };
        let prefill_rows = ATTENTION_MAX_ROWS.min(ATTENTION_Q_TILE / hd4);
        let group = heads.n_head / heads.n_head_kv;
        AttentionTiles {
            prefill: tile(prefill_rows),
            decode: tile(group.min(prefill_rows)),
        }
    }
}
