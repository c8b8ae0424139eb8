//! Recording a forward pass: each operation of the model becomes one or more dispatches of
//! the kernel [`KernelChoice`](super::KernelChoice) picks, with its typed parameters and its
//! buffers, collected into one command submission.

use super::Kernels;
use super::choice::{HeadShape, MatrixKernel};
use super::encode::{self, Dispatch, SubmitCache};
use super::params::{self, Uniform, flag};
use super::source::{
    CPU_MATVEC_WORKGROUP, GPU_MATVEC_ROWS, Kernel, MATMUL_TILE, MATVEC_WORKGROUP, TOP_K,
    TOP_K_CHUNK, X_WINDOW_BYTES, X_WINDOW_VALUES,
};
use crate::gpu::{Gpu, GpuBuffer};
use crate::weights::{GpuMatrix, GpuVector, Projection};

/// The activations a matrix product reads: rows of `buffer` from `row` on, RMS-normalised
/// first where `norm` says so.
#[derive(Clone, Copy)]
pub struct MatrixInput<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub row: u32,
    pub norm: Option<RmsNorm<'a>>,
}

/// An RMSNorm in front of a matrix product: `x / sqrt(mean(x²) + eps) * gain`, fused into the
/// product's kernel where the kernel can; elsewhere run by rmsnorm.wgsl into `scratch` first.
#[derive(Clone, Copy)]
pub struct RmsNorm<'a> {
    pub gain: &'a GpuVector,
    pub eps: f32,
    pub scratch: &'a wgpu::Buffer,
}

impl<'a> MatrixInput<'a> {
    /// Rows of `buffer` from `row` on, as they are.
    pub fn rows(buffer: &'a wgpu::Buffer, row: u32) -> Self {
        MatrixInput {
            buffer,
            row,
            norm: None,
        }
    }

    /// Rows of `buffer` from `row` on, RMS-normalised.
    pub fn normed(buffer: &'a wgpu::Buffer, row: u32, norm: RmsNorm<'a>) -> Self {
        MatrixInput {
            buffer,
            row,
            norm: Some(norm),
        }
    }

    /// The buffer bound as the gain of kernels that take one: the norm's, else any.
    fn gain(&self) -> &'a wgpu::Buffer {
        self.norm.map_or(self.buffer, |n| &n.gain.buffer)
    }

    fn eps(&self) -> f32 {
        self.norm.map_or(0.0, |n| n.eps)
    }
}

/// Where a matrix product writes: `buffer[t * stride + offset + r]` for token t and row r,
/// added to what is there where `accumulate` (a residual add fused into the product).
#[derive(Clone, Copy)]
pub struct MatrixOutput<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub stride: u32,
    pub offset: u32,
    pub accumulate: bool,
}

impl<'a> MatrixOutput<'a> {
    /// Rows of `stride` values, written from column 0.
    pub fn rows(buffer: &'a wgpu::Buffer, stride: u32) -> Self {
        MatrixOutput {
            buffer,
            stride,
            offset: 0,
            accumulate: false,
        }
    }

    /// The same rows, written from column `offset`.
    pub fn at(self, offset: u32) -> Self {
        MatrixOutput { offset, ..self }
    }

    /// The same rows, the product added to them.
    pub fn adding(self) -> Self {
        MatrixOutput {
            accumulate: true,
            ..self
        }
    }
}

/// The attention geometry RoPE and attention kernels need.
#[derive(Clone, Copy, Debug)]
pub struct RopeShape {
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim: u32,
    pub n_rot: u32,
    /// Values per token in the qkv buffer.
    pub qkv_stride: u32,
    pub neox: bool,
    pub base: f32,
    pub freq_scale: f32,
    pub attn_factor: f32,
    /// Multiplier on the queries before their dot products.
    pub scale: f32,
    /// Positions a query sees, itself included; 0: all before it.
    pub window: u32,
}

impl RopeShape {
    pub fn heads(&self) -> HeadShape {
        HeadShape {
            n_head: self.n_head,
            n_head_kv: self.n_head_kv,
            head_dim: self.head_dim,
        }
    }

    /// The rotation as the kernels' parameters hold it.
    fn rotation(&self) -> params::Rope {
        params::Rope {
            n_rot: self.n_rot,
            neox: flag(self.neox),
            log2_base: self.base.log2(),
            freq_scale: self.freq_scale,
            attn_factor: self.attn_factor,
        }
    }
}

/// The buffers RoPE and attention read and write.
#[derive(Clone, Copy)]
pub struct AttentionBuffers<'a> {
    /// f32 (n_tokens, qkv_stride): each token's query heads, then key heads, then value heads.
    pub qkv: &'a wgpu::Buffer,
    /// The layer's cache: (kv_rows, n_head_kv · head_dim) values; position p in row
    /// p % kv_rows (a ring on sliding-window layers, whose window and micro-batch it holds).
    pub k_cache: &'a wgpu::Buffer,
    pub v_cache: &'a wgpu::Buffer,
    pub kv_rows: u32,
    /// f32 (n_tokens, n_head · head_dim).
    pub out: &'a wgpu::Buffer,
    /// f32 `attention_partials_len`: split decoding's partial results.
    pub partials: &'a wgpu::Buffer,
}

/// Fresh tokens: `n_tokens` of them at positions `pos0..`.
#[derive(Clone, Copy, Debug)]
pub struct Positions {
    pub pos0: u32,
    pub n_tokens: u32,
}

/// A product's gate: the gate rows (0: an ungated product) and whether it is GELU, not SiLU.
#[derive(Clone, Copy)]
struct Glu {
    rows: u32,
    gelu: bool,
}

impl Glu {
    const NONE: Glu = Glu {
        rows: 0,
        gelu: false,
    };
}

/// Collects the dispatches of one forward pass and submits them as one command buffer.
pub struct Recorder<'a> {
    kernels: &'a Kernels,
    dispatches: Vec<Dispatch<'a>>,
    max_groups: u32,
}

/// A whole buffer as a binding.
fn whole(buffer: &wgpu::Buffer) -> wgpu::BufferBinding<'_> {
    wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: None,
    }
}

/// Splits a 1-D count of workgroups over x and y (each dimension is limited, to 65535).
fn grid(n: u32, limit: u32) -> [u32; 3] {
    if n <= limit {
        [n.max(1), 1, 1]
    } else {
        [limit, n.div_ceil(limit), 1]
    }
}

impl<'a> Recorder<'a> {
    pub fn new(gpu: &Gpu, kernels: &'a Kernels) -> Self {
        let max_groups = gpu.limits.max_compute_workgroups_per_dimension;
        Recorder {
            kernels,
            dispatches: Vec::new(),
            max_groups,
        }
    }

    /// Records a dispatch binding `buffers` whole, as bindings 1, 2, ...
    fn push<P: Uniform>(
        &mut self,
        kernel: Kernel,
        params: P,
        buffers: &[&'a wgpu::Buffer],
        groups: [u32; 3],
    ) {
        let bindings = buffers.iter().map(|b| whole(b)).collect();
        self.push_bindings(kernel, params, bindings, groups);
    }

    fn push_bindings<P: Uniform>(
        &mut self,
        kernel: Kernel,
        params: P,
        buffers: Vec<wgpu::BufferBinding<'a>>,
        groups: [u32; 3],
    ) {
        debug_assert_eq!(P::WGSL_NAME, kernel.params_name(), "{kernel}'s parameters");
        let pipeline = self.kernels.pipeline(kernel);
        self.dispatches
            .push(Dispatch::new(kernel, pipeline, params, buffers, groups));
    }

    /// `out[t, :] = scale · embedding[tokens[t], :]` for `n_tokens` token ids (u32) in `tokens`.
    pub fn embed(
        &mut self,
        w: &'a GpuMatrix,
        scale: f32,
        tokens: &'a wgpu::Buffer,
        n_tokens: u32,
        out: &'a wgpu::Buffer,
    ) {
        for chunk in &w.chunks {
            let params = params::EmbedParams {
                k: w.cols,
                scale_offset: chunk.scale_offset,
                n_rows: chunk.rows,
                n_tokens,
                row_start: chunk.row_start,
                scale,
            };
            let groups = [(w.cols / 8).div_ceil(64), n_tokens, 1];
            self.push(
                Kernel::Embed(w.ty),
                params,
                &[&chunk.buffer, tokens, out],
                groups,
            );
        }
    }

    /// `norm.scratch[r, :] = rmsnorm(x[row + r, :]) * gain` for `n_rows` rows.
    pub fn rms_norm(&mut self, x: &'a wgpu::Buffer, row: u32, n_rows: u32, norm: RmsNorm<'a>) {
        self.push_norm(x, row, n_rows, norm.gain, norm.eps, norm.scratch, false);
    }

    /// `out[r, :] += rmsnorm(x[r, :]) * gain` for `n_rows` rows: a norm of a block's output
    /// before the residual add.
    pub fn rms_norm_add(
        &mut self,
        x: &'a wgpu::Buffer,
        n_rows: u32,
        gain: &'a GpuVector,
        eps: f32,
        out: &'a wgpu::Buffer,
    ) {
        self.push_norm(x, 0, n_rows, gain, eps, out, true);
    }

    #[allow(clippy::too_many_arguments)]
    fn push_norm(
        &mut self,
        x: &'a wgpu::Buffer,
        row: u32,
        n_rows: u32,
        gain: &'a GpuVector,
        eps: f32,
        out: &'a wgpu::Buffer,
        accumulate: bool,
    ) {
        let params = params::NormParams {
            n: gain.len,
            x_row: row,
            eps,
            accumulate: flag(accumulate),
        };
        let kernel = self.kernels.choice().rms_norm();
        self.push(kernel, params, &[x, &gain.buffer, out], [n_rows, 1, 1]);
    }

    /// `x` as the products by every matrix of `weights` can read it: as it is where their
    /// kernels all normalise as they read (or no norm is asked for); otherwise normalised once
    /// by rmsnorm.wgsl into the norm's scratch buffer, which is then the input.
    pub fn prepare_input<'w>(
        &mut self,
        x: MatrixInput<'a>,
        n_tokens: u32,
        weights: impl IntoIterator<Item = &'w GpuMatrix>,
    ) -> MatrixInput<'a> {
        let choice = self.kernels.choice();
        match x.norm {
            Some(norm)
                if !weights
                    .into_iter()
                    .all(|w| choice.fuses_norm(choice.matrix(w, &x, n_tokens))) =>
            {
                self.rms_norm(x.buffer, x.row, n_tokens, norm);
                MatrixInput::rows(norm.scratch, 0)
            }
            _ => x,
        }
    }

    /// `y[t, r] (+)= W[r, :] · x[t, :]` for `n_tokens` tokens, once per row chunk of `w`, by
    /// the kernel the adapter and shapes call for.
    pub fn matmul(
        &mut self,
        w: &'a GpuMatrix,
        x: MatrixInput<'a>,
        n_tokens: u32,
        y: MatrixOutput<'a>,
    ) {
        let x = self.prepare_input(x, n_tokens, [w]);
        let kernel = self.kernels.choice().matrix(w, &x, n_tokens);
        self.record_matrix(kernel, w, x, n_tokens, y, Glu::NONE);
    }

    /// The feed-forward block's gated activation `act[t, :] = silu(gate) * up` (GELU in place
    /// of SiLU where `gelu`), where
    /// `[gate | up] = W x[t]` comes from `parts` (gate rows into columns `[0, n_ff)`, up rows
    /// after). Where one matrix holds both halves and a kernel can, it applies the gate as it
    /// writes: one dispatch, and `gate_up` is not touched. Otherwise the products go to
    /// `gate_up` (n_tokens, 2 n_ff) and gate.wgsl follows.
    #[allow(clippy::too_many_arguments)]
    pub fn gated_ffn_input(
        &mut self,
        parts: &'a [Projection],
        gelu: bool,
        x: MatrixInput<'a>,
        n_tokens: u32,
        gate_up: &'a wgpu::Buffer,
        act: &'a wgpu::Buffer,
    ) {
        let n_ff = parts.iter().map(|p| p.weight.rows).sum::<u32>() / 2;
        let x = self.prepare_input(x, n_tokens, parts.iter().map(|p| &p.weight));
        let act_rows = MatrixOutput::rows(act, n_ff);
        if let [only] = parts
            && only.out_offset == 0
            && let Some(kernel) = self
                .kernels
                .choice()
                .gated_matrix(&only.weight, &x, n_tokens)
        {
            let glu = Glu { rows: n_ff, gelu };
            return self.record_matrix(kernel, &only.weight, x, n_tokens, act_rows, glu);
        }
        for p in parts {
            self.matmul(
                &p.weight,
                x,
                n_tokens,
                MatrixOutput::rows(gate_up, 2 * n_ff).at(p.out_offset),
            );
        }
        self.gate(n_ff, gelu, n_tokens, gate_up, act);
    }

    /// Records `kernel` for `w` × x: the product, or with `glu.rows` > 0 the gated activation
    /// of `w`'s first `glu.rows` rows by the next `glu.rows` (the kernels
    /// `KernelChoice::gated_matrix` names).
    fn record_matrix(
        &mut self,
        kernel: MatrixKernel,
        w: &'a GpuMatrix,
        x: MatrixInput<'a>,
        n_tokens: u32,
        y: MatrixOutput<'a>,
        glu: Glu,
    ) {
        match kernel {
            MatrixKernel::GpuMatvec => self.gpu_matvec(w, x, y, glu),
            MatrixKernel::GpuTiles => self.gpu_tiles(w, x, n_tokens, y),
            MatrixKernel::CpuWindows => self.cpu_windows(w, x, n_tokens, y, glu),
            MatrixKernel::CpuBlocks | MatrixKernel::General => self.general(w, x, n_tokens, y),
        }
    }

    /// matvec_gpu.wgsl: one token, normalising its input as it reads where `x` asks for it;
    /// with `glu.rows` > 0 the gated activation of the first `glu.rows` rows by the next.
    fn gpu_matvec(&mut self, w: &'a GpuMatrix, x: MatrixInput<'a>, y: MatrixOutput<'a>, glu: Glu) {
        let kernel = self.kernels.choice().gpu_matvec(w.ty, x.norm.is_some());
        let Kernel::MatvecGpu { lanes, .. } = kernel else {
            unreachable!("matvec_gpu")
        };
        let rows_per_workgroup = GPU_MATVEC_ROWS * (MATVEC_WORKGROUP / lanes);
        for chunk in &w.chunks {
            let rows = if glu.rows > 0 { glu.rows } else { chunk.rows };
            let params = params::GpuMatrixParams {
                k: w.cols,
                scale_offset: chunk.scale_offset,
                n_rows: rows,
                out_offset: y.offset + chunk.row_start,
                accumulate: flag(y.accumulate),
                x_row: x.row,
                glu: glu.rows,
                eps: x.eps(),
                gelu: flag(glu.gelu),
            };
            // The weights twice: as u32 words and as vec4 of them.
            let buffers = [&chunk.buffer, x.buffer, y.buffer, &chunk.buffer, x.gain()];
            let groups = grid(rows.div_ceil(rows_per_workgroup), self.max_groups);
            self.push(kernel, params, &buffers, groups);
        }
    }

    /// matmul.wgsl: 64-token × 64-row tiles, normalising the input where `x` asks for it.
    fn gpu_tiles(
        &mut self,
        w: &'a GpuMatrix,
        x: MatrixInput<'a>,
        n_tokens: u32,
        y: MatrixOutput<'a>,
    ) {
        let kernel = Kernel::Matmul {
            ty: w.ty,
            normed: x.norm.is_some(),
        };
        for chunk in &w.chunks {
            let params = matrix_params(w, chunk, &x, n_tokens, y);
            let groups = [
                chunk.rows.div_ceil(MATMUL_TILE),
                n_tokens.div_ceil(MATMUL_TILE),
                1,
            ];
            self.push(
                kernel,
                params,
                &[&chunk.buffer, x.buffer, y.buffer, x.gain()],
                groups,
            );
        }
    }

    /// matvec.wgsl: one token, or on CPU adapters blocks of tokens.
    fn general(
        &mut self,
        w: &'a GpuMatrix,
        x: MatrixInput<'a>,
        n_tokens: u32,
        y: MatrixOutput<'a>,
    ) {
        let choice = self.kernels.choice();
        let kernel = if n_tokens == 1 {
            choice.general_matvec(w.ty, 1)
        } else {
            choice.cpu_prefill_matvec(w.ty)
        };
        let Kernel::Matvec {
            threads_per_row,
            tokens,
            ..
        } = kernel
        else {
            unreachable!("matvec")
        };
        for chunk in &w.chunks {
            let params = matrix_params(w, chunk, &x, n_tokens, y);
            let [gx, gy, _] = grid(
                chunk.rows.div_ceil(MATVEC_WORKGROUP / threads_per_row),
                self.max_groups,
            );
            let groups = [gx, gy, n_tokens.div_ceil(tokens)];
            self.push(kernel, params, &[&chunk.buffer, x.buffer, y.buffer], groups);
        }
    }

    /// matvec_cpu.wgsl: the tokens and the k range cut into windows of at most X_WINDOW_BYTES
    /// of `x`, one dispatch each (later k slices add to the first). With `glu.rows` > 0, the
    /// gated activation of the first `glu.rows` rows by the next (one k slice only).
    fn cpu_windows(
        &mut self,
        w: &'a GpuMatrix,
        x: MatrixInput<'a>,
        n_tokens: u32,
        y: MatrixOutput<'a>,
        glu: Glu,
    ) {
        let k = w.cols;
        let kernel = self.kernels.choice().cpu_matvec(w.ty);
        let Kernel::MatvecCpu {
            rows_per_thread, ..
        } = kernel
        else {
            unreachable!("matvec_cpu")
        };
        let row_bytes = k as u64 * 4;
        let tokens_per_window = (X_WINDOW_VALUES / k).max(1);
        let slice = k.min(X_WINDOW_VALUES);
        for chunk in &w.chunks {
            let rows_per_group = rows_per_thread * CPU_MATVEC_WORKGROUP;
            let groups = grid(chunk.rows.div_ceil(rows_per_group), self.max_groups);
            for t0 in (0..n_tokens).step_by(tokens_per_window as usize) {
                let tokens = tokens_per_window.min(n_tokens - t0);
                for k_begin in (0..k).step_by(slice as usize) {
                    let window = wgpu::BufferBinding {
                        buffer: x.buffer,
                        offset: (x.row + t0) as u64 * row_bytes + k_begin as u64 * 4,
                        size: wgpu::BufferSize::new(X_WINDOW_BYTES),
                    };
                    let params = params::CpuMatrixParams {
                        k,
                        scale_offset: chunk.scale_offset,
                        n_rows: chunk.rows,
                        n_tokens: tokens,
                        out_stride: y.stride,
                        out_offset: y.offset + chunk.row_start + t0 * y.stride,
                        accumulate: flag(y.accumulate || k_begin > 0),
                        k_begin,
                        k_len: slice.min(k - k_begin),
                        glu: glu.rows,
                        gelu: flag(glu.gelu),
                    };
                    // The weights twice: as u32 words and as vec4 of them.
                    let buffers = vec![
                        whole(&chunk.buffer),
                        window,
                        whole(y.buffer),
                        whole(&chunk.buffer),
                    ];
                    self.push_bindings(kernel, params, buffers, groups);
                }
            }
        }
    }

    /// RoPE on the fresh tokens' queries and keys in `b.qkv` (queries rotated in place), keys
    /// and values stored in the caches at their positions.
    pub fn rope_kv(
        &mut self,
        rope: &RopeShape,
        freq: &'a GpuVector,
        at: Positions,
        b: &AttentionBuffers<'a>,
    ) {
        let params = params::RopeParams {
            rotation: rope.rotation(),
            pos0: at.pos0,
            n_head: rope.n_head,
            n_head_kv: rope.n_head_kv,
            head_dim: rope.head_dim,
            qkv_stride: rope.qkv_stride,
            kv_rows: b.kv_rows,
            ..Default::default()
        };
        let groups = [at.n_tokens, rope.n_head + 2 * rope.n_head_kv, 1];
        self.push(
            Kernel::RopeKv,
            params,
            &[b.qkv, &freq.buffer, b.k_cache, b.v_cache],
            groups,
        );
    }

    /// Causal attention of the fresh tokens' queries over the cache (their keys and values
    /// stored already).
    pub fn attention(&mut self, rope: &RopeShape, at: Positions, b: &AttentionBuffers<'a>) {
        self.attention_rotating(rope, None, at, b);
    }

    /// `rope_kv` then `attention`; where the kernels fuse it (a decoded token on GPUs), one
    /// dispatch: attention_gpu.wgsl rotates and stores the token itself, leaving `qkv` as it is.
    pub fn rope_attention(
        &mut self,
        rope: &RopeShape,
        freq: &'a GpuVector,
        at: Positions,
        b: &AttentionBuffers<'a>,
    ) {
        if self.kernels.choice().fuses_rope(at.n_tokens) {
            self.attention_rotating(rope, Some(freq), at, b);
        } else {
            self.rope_kv(rope, freq, at, b);
            self.attention(rope, at, b);
        }
    }

    /// `attention`, rotating one decoded token and storing its key and value first where
    /// `freq` is given (attention_gpu.wgsl only).
    fn attention_rotating(
        &mut self,
        rope: &RopeShape,
        freq: Option<&'a GpuVector>,
        at: Positions,
        b: &AttentionBuffers<'a>,
    ) {
        // The keys the last query sees, which split decoding divides.
        let n_keys = at.pos0 + at.n_tokens;
        let n_visible = match rope.window {
            0 => n_keys,
            window => n_keys.min(window),
        };
        let plan = self
            .kernels
            .choice()
            .attention(rope.heads(), at.n_tokens, n_visible);
        let params = params::AttnParams {
            rotation: rope.rotation(),
            pos0: at.pos0,
            n_head: rope.n_head,
            n_head_kv: rope.n_head_kv,
            head_dim: rope.head_dim,
            qkv_stride: rope.qkv_stride,
            scale: rope.scale,
            split_len: plan.split_len,
            n_splits: plan.n_splits,
            n_tokens: at.n_tokens,
            rotate: flag(freq.is_some()),
            window: rope.window,
            kv_rows: b.kv_rows,
            ..Default::default()
        };
        let buffers = [b.qkv, b.k_cache, b.v_cache, b.out, b.partials];
        match plan.kernel {
            Kernel::AttentionGpu(_) => {
                // The frequencies, or any read-only buffer where nothing is rotated.
                let freq = freq.map_or(b.qkv, |f| &f.buffer);
                let rows = at.n_tokens * (rope.n_head / rope.n_head_kv);
                let groups = [
                    rope.n_head_kv,
                    rows.div_ceil(plan.rows_per_group),
                    plan.n_splits,
                ];
                self.push(
                    plan.kernel,
                    params,
                    &[&buffers[..], &[freq]].concat(),
                    groups,
                );
            }
            _ => self.push(
                plan.kernel,
                params,
                &buffers,
                [rope.n_head, at.n_tokens, plan.n_splits],
            ),
        }
        if plan.n_splits > 1 {
            let params = params::CombineParams {
                head_dim: rope.head_dim,
                n_splits: plan.n_splits,
            };
            self.push(
                Kernel::AttentionCombine,
                params,
                &[b.partials, b.out],
                [rope.n_head, 1, 1],
            );
        }
    }

    /// `y[t, i] += bias[i]` for the first `bias.len` columns of `n_tokens` rows `stride` apart.
    pub fn add_bias(
        &mut self,
        y: &'a wgpu::Buffer,
        stride: u32,
        n_tokens: u32,
        bias: &'a GpuVector,
    ) {
        let params = params::BiasParams {
            n: bias.len,
            stride,
        };
        self.push(
            Kernel::QkvBias,
            params,
            &[y, &bias.buffer],
            [bias.len.div_ceil(64), n_tokens, 1],
        );
    }

    /// RMSNorm of each of the `n_head` query and `n_head_kv` key heads of `n_tokens` qkv rows
    /// `stride` apart, in place, with the gains `q_gain` and `k_gain` (`head_dim` each).
    #[allow(clippy::too_many_arguments)]
    pub fn head_norm(
        &mut self,
        qkv: &'a wgpu::Buffer,
        heads: HeadShape,
        stride: u32,
        n_tokens: u32,
        q_gain: &'a GpuVector,
        k_gain: &'a GpuVector,
        eps: f32,
    ) {
        let params = params::HeadNormParams {
            head_dim: heads.head_dim,
            stride,
            n_head: heads.n_head,
            eps,
        };
        let kernel = self.kernels.choice().head_norm();
        self.push(
            kernel,
            params,
            &[qkv, &q_gain.buffer, &k_gain.buffer],
            [heads.n_head + heads.n_head_kv, n_tokens, 1],
        );
    }

    /// `out[t, i] = act(gate_up[t, i]) * gate_up[t, n_ff + i]`, act SiLU or where `gelu` GELU.
    pub fn gate(
        &mut self,
        n_ff: u32,
        gelu: bool,
        n_tokens: u32,
        gate_up: &'a wgpu::Buffer,
        out: &'a wgpu::Buffer,
    ) {
        let params = params::GateParams {
            n_ff,
            n_tokens,
            gelu: flag(gelu),
        };
        self.push(
            Kernel::Gate,
            params,
            &[gate_up, out],
            [n_ff.div_ceil(64), n_tokens, 1],
        );
    }

    /// `result[0]` = the index of the largest of `logits[0..n)`, the first of equal maxima.
    pub fn argmax(&mut self, logits: &'a wgpu::Buffer, n: u32, result: &'a wgpu::Buffer) {
        let kernel = self.kernels.choice().argmax();
        // The logits twice: as f32 and as vec4 of them.
        self.push(
            kernel,
            params::ArgmaxParams { n },
            &[logits, result, logits],
            [1, 1, 1],
        );
    }

    /// Applies repetition/frequency/presence penalties and logit bias in place; `entries`
    /// holds `n_entries` (token, count, bias bits, 0) records, each token once.
    pub fn penalize(
        &mut self,
        logits: &'a wgpu::Buffer,
        entries: &'a wgpu::Buffer,
        n_entries: u32,
        penalties: [f32; 3],
    ) {
        if n_entries == 0 {
            return;
        }
        let [repeat, frequency, presence] = penalties;
        let params = params::PenaltyParams {
            n_entries,
            repeat,
            frequency,
            presence,
        };
        self.push(
            Kernel::Penalize,
            params,
            &[logits, entries],
            [n_entries.div_ceil(64), 1, 1],
        );
    }

    /// Gives every token of `logits[0..n)` that `allowed` (a bit per token) does not allow the
    /// lowest logit, so that neither argmax nor top-k can pick it.
    pub fn mask(&mut self, logits: &'a wgpu::Buffer, n: u32, allowed: &'a wgpu::Buffer) {
        let params = params::MaskParams { n };
        self.push(
            Kernel::Mask,
            params,
            &[logits, allowed],
            [n.div_ceil(32 * 64), 1, 1],
        );
    }

    /// Reduces `logits[0..n)` to its `TOP_K` largest (value, token) pairs, sorted descending,
    /// in rounds that ping-pong between the two scratch pairs. Returns the pair holding them.
    pub fn top_k(
        &mut self,
        logits: &'a wgpu::Buffer,
        n: u32,
        scratch: &'a [(GpuBuffer, GpuBuffer); 2],
    ) -> (&'a wgpu::Buffer, &'a wgpu::Buffer) {
        let mut n = n;
        let mut round = 0usize;
        loop {
            let out = &scratch[round % 2];
            let (values, indices): (&wgpu::Buffer, &wgpu::Buffer) = match round {
                0 => (logits, logits),
                _ => (&scratch[(round + 1) % 2].0, &scratch[(round + 1) % 2].1),
            };
            let chunks = n.div_ceil(TOP_K_CHUNK);
            let params = params::TopKParams {
                n,
                first_round: flag(round == 0),
            };
            self.push(
                Kernel::TopK,
                params,
                &[values, indices, &out.0, &out.1],
                [chunks, 1, 1],
            );
            if chunks == 1 {
                return (&out.0, &out.1);
            }
            n = chunks * TOP_K;
            round += 1;
        }
    }

    /// Encodes every dispatch into one compute pass, lets `after` append copies (read-backs),
    /// and submits once. `cache` keeps the parameter buffer and the bind groups across calls.
    pub fn submit(
        self,
        gpu: &Gpu,
        cache: &mut SubmitCache,
        after: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> wgpu::SubmissionIndex {
        encode::submit(gpu, &self.dispatches, cache, after)
    }
}

/// matvec.wgsl's and matmul.wgsl's parameters for one chunk of `w`.
fn matrix_params(
    w: &GpuMatrix,
    chunk: &crate::weights::MatrixChunk,
    x: &MatrixInput,
    n_tokens: u32,
    y: MatrixOutput,
) -> params::MatrixParams {
    params::MatrixParams {
        k: w.cols,
        scale_offset: chunk.scale_offset,
        n_rows: chunk.rows,
        n_tokens,
        out_stride: y.stride,
        out_offset: y.offset + chunk.row_start,
        accumulate: flag(y.accumulate),
        x_row: x.row,
        eps: x.eps(),
    }
}
