//! Each WGSL kernel against a plain-Rust f64 reference, on sizes that are not multiples of
//! the workgroup or tile sizes. A case is a struct of named fields; `check` runs it.

use half::{bf16, f16};
use hearth_engine::gpu::GpuBuffer;
use hearth_engine::kernels::{
    AttentionBuffers, HeadShape, Kernels, MatrixInput, MatrixOutput, Positions, Recorder, RmsNorm,
    RopeShape, SubmitCache, X_WINDOW_BYTES, attention_partials_len,
};
use hearth_engine::weights::{GpuMatrix, GpuVector, Projection};
use hearth_engine::{AdapterKind, Gpu, KvFormat};
use hearth_gguf::quant::dequantize;
use hearth_gguf::{GgmlType, SliceSource, TensorInfo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ALL_TYPES: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Bf16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

/// The kernel set of CPU-emulated adapters (what lavapipe, which runs these tests, chooses).
const CPU: AdapterKind = AdapterKind::CpuEmulated;

/// The GPU kernel set, `lanes` lanes to a group of matrix rows.
const fn gpu(lanes: u32) -> AdapterKind {
    AdapterKind::Gpu {
        matvec_lanes: lanes,
    }
}

/// The device a case runs on.
#[derive(Clone, Copy)]
struct Device {
    /// The kernel set; the adapter's own where `None`.
    adapter: Option<AdapterKind>,
    /// The GPU kernels' fusions (RMSNorm into products, a decoded token's RoPE into attention).
    fusion: bool,
    /// Bindings of at most this many bytes, so that matrices split into row chunks.
    binding_limit: Option<u64>,
    kv: Option<KvFormat>,
}

impl Default for Device {
    fn default() -> Self {
        Device {
            adapter: None,
            fusion: true,
            binding_limit: None,
            kv: None,
        }
    }
}

impl Device {
    fn on(adapter: AdapterKind) -> Self {
        Device {
            adapter: Some(adapter),
            ..Default::default()
        }
    }

    fn open(self) -> Gpu {
        let mut gpu = pollster::block_on(Gpu::new()).unwrap();
        if let Some(adapter) = self.adapter {
            gpu.set_adapter_kind(adapter).unwrap();
        }
        gpu.set_kernel_fusion(self.fusion);
        if let Some(limit) = self.binding_limit {
            gpu.limit_binding_bytes(limit);
        }
        if let Some(kv) = self.kv {
            assert!(gpu.set_kv_format(kv), "{kv:?} KV cache on this adapter");
        }
        gpu
    }
}

/// Random but valid blocks: random quants, small finite f16 scales where the format has them.
fn random_weights(rng: &mut StdRng, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let n = rows * cols;
    match ty {
        GgmlType::F32 => (0..n)
            .flat_map(|_| rng.random_range(-1.0f32..1.0).to_le_bytes())
            .collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.random_range(-1.0..1.0)).to_le_bytes())
            .collect(),
        GgmlType::Bf16 => (0..n)
            .flat_map(|_| bf16::from_f32(rng.random_range(-1.0..1.0)).to_le_bytes())
            .collect(),
        _ => {
            let (block, size) = ty.block_layout();
            let mut raw: Vec<u8> = (0..n / block * size).map(|_| rng.random()).collect();
            let scale_at: &[usize] = match ty {
                GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 => &[0],
                GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
                GgmlType::Q6K => &[208],
                _ => unreachable!(),
            };
            for b in raw.chunks_exact_mut(size) {
                for &at in scale_at {
                    let s = f16::from_f32(rng.random_range(0.001..0.05));
                    b[at..at + 2].copy_from_slice(&s.to_le_bytes());
                }
            }
            raw
        }
    }
}

async fn matrix(gpu: &Gpu, ty: GgmlType, raw: &[u8], rows: usize, cols: usize) -> GpuMatrix {
    let info = TensorInfo {
        name: format!("{ty}"),
        dims: vec![cols as u64, rows as u64],
        ty,
        offset: 0,
        n_bytes: raw.len() as u64,
    };
    GpuMatrix::upload(gpu, &SliceSource(raw), &info, |_| {})
        .await
        .unwrap()
}

fn buffer(gpu: &Gpu, data: &[f32]) -> GpuBuffer {
    let bytes = (data.len() * 4) as u64;
    let b = pollster::block_on(gpu.storage_buffer("test", bytes, wgpu::BufferUsages::empty()));
    let b = b.unwrap();
    gpu.queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    b
}

fn read(gpu: &Gpu, b: &wgpu::Buffer, n: usize) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(&pollster::block_on(gpu.read_storage(b, (n * 4) as u64)).unwrap())
}

fn random_vec(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * w.abs().max(1.0),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// Reference RMSNorm of each `n`-value row of `x`: x / sqrt(mean(x²) + eps) * gain.
fn rms_normed(x: &[f32], n: usize, gain: &[f32], eps: f32) -> Vec<f64> {
    x.chunks_exact(n)
        .flat_map(|row| {
            let mean_square = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n as f64;
            let scale = 1.0 / (mean_square + eps as f64).sqrt();
            row.iter()
                .zip(gain)
                .map(move |(&v, &g)| v as f64 * scale * g as f64)
        })
        .collect()
}

/// Sentinel filling scratch buffers that a fused kernel must leave untouched.
const UNTOUCHED: f32 = 1234.5;

/// A buffer as sessions allocate matrix inputs: usable as a uniform window (CPU adapters)
/// with room for a whole window past the last row.
fn session_input(gpu: &Gpu, values: &[f32]) -> GpuBuffer {
    let bytes = (values.len() * 4) as u64 + X_WINDOW_BYTES;
    let b = pollster::block_on(gpu.storage_buffer("x", bytes, wgpu::BufferUsages::UNIFORM));
    let b = b.unwrap();
    gpu.queue.write_buffer(&b, 0, bytemuck::cast_slice(values));
    b
}

/// A KV-cache buffer holding `values` as f16 or f32.
fn kv_buffer(gpu: &Gpu, values: &[f32], f16_cache: bool) -> GpuBuffer {
    if !f16_cache {
        return buffer(gpu, values);
    }
    let mut bytes: Vec<u8> = values
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect();
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    let none = wgpu::BufferUsages::empty();
    let b = pollster::block_on(gpu.storage_buffer("kv", bytes.len() as u64, none)).unwrap();
    gpu.queue.write_buffer(&b, 0, &bytes);
    b
}

fn read_kv(gpu: &Gpu, b: &wgpu::Buffer, n: usize, f16_cache: bool) -> Vec<f32> {
    if !f16_cache {
        return read(gpu, b, n);
    }
    let bytes = pollster::block_on(gpu.read_storage(b, (n * 2).next_multiple_of(4) as u64));
    let bytes = bytes.unwrap();
    bytes
        .chunks_exact(2)
        .take(n)
        .map(|h| f16::from_le_bytes([h[0], h[1]]).to_f32())
        .collect()
}

/// The KV formats this adapter can run: f32, packed f16, and native f16 where it has
/// shader-f16.
fn kv_formats() -> Vec<KvFormat> {
    let mut gpu = pollster::block_on(Gpu::new()).unwrap();
    let mut formats = vec![KvFormat::F32, KvFormat::PackedF16];
    if gpu.set_kv_format(KvFormat::F16) {
        formats.push(KvFormat::F16);
    }
    formats
}

/// Records on `gpu` with `kernels` and submits.
fn run<'a>(gpu: &Gpu, kernels: &'a Kernels, record: impl FnOnce(&mut Recorder<'a>)) {
    let mut rec = Recorder::new(gpu, kernels);
    record(&mut rec);
    rec.submit(gpu, &mut SubmitCache::default(), |_| {});
}

/// How the input x of a matrix product is allocated.
#[derive(Clone, Copy, PartialEq, Default)]
enum Input {
    /// As sessions allocate it: CPU adapters can read it through uniform windows.
    #[default]
    Session,
    /// A plain storage buffer: every adapter takes the general kernels.
    Storage,
}

/// y[t, offset + r] = y0 + W[r, :] · x[t, :] for `tokens` tokens, into a wider output.
#[derive(Clone, Copy)]
struct Matmul {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    tokens: usize,
    device: Device,
    input: Input,
}

impl Default for Matmul {
    fn default() -> Self {
        Matmul {
            ty: GgmlType::F32,
            rows: 37,
            cols: 512,
            tokens: 1,
            device: Device::default(),
            input: Input::Session,
        }
    }
}

impl Matmul {
    fn check(self) {
        let Matmul {
            ty,
            rows,
            cols,
            tokens,
            device,
            input,
        } = self;
        let mut rng = StdRng::seed_from_u64(ty as u64 * 31 + tokens as u64);
        let gpu = device.open();
        let raw = random_weights(&mut rng, ty, rows, cols);
        let w = dequantize(ty, &raw).unwrap();
        let m = pollster::block_on(matrix(&gpu, ty, &raw, rows, cols));
        if device.binding_limit.is_some() {
            assert!(m.chunks.len() > 1, "{ty}: expected several chunks");
        }
        let kernels = pollster::block_on(Kernels::new(&gpu, [ty], None)).unwrap();
        let (stride, offset) = (rows + 7, 5usize);
        let x = random_vec(&mut rng, tokens * cols);
        let y0 = random_vec(&mut rng, tokens * stride);
        // The input sits one token row in, as the windows then start past the buffer's start.
        let x_rows = [vec![0.0; cols], x.clone()].concat();
        let xb = match input == Input::Session && kernels.choice().wants_uniform_inputs() {
            true => session_input(&gpu, &x_rows),
            false => buffer(&gpu, &x_rows),
        };
        let yb = buffer(&gpu, &y0);
        let y = MatrixOutput::rows(&yb, stride as u32)
            .at(offset as u32)
            .adding();
        run(&gpu, &kernels, |rec| {
            rec.matmul(&m, MatrixInput::rows(&xb, 1), tokens as u32, y)
        });
        let got = read(&gpu, &yb, tokens * stride);
        let mut want: Vec<f64> = y0.iter().map(|&v| v as f64).collect();
        // f32 dot products err relative to the sum of |terms|, not to their (cancelling) sum.
        let mut magnitude: Vec<f64> = y0.iter().map(|&v| (v as f64).abs()).collect();
        for t in 0..tokens {
            for r in 0..rows {
                let terms = (0..cols).map(|k| w[r * cols + k] as f64 * x[t * cols + k] as f64);
                want[t * stride + offset + r] += terms.clone().sum::<f64>();
                magnitude[t * stride + offset + r] += terms.map(f64::abs).sum::<f64>();
            }
        }
        for (i, ((&g, &w), &m)) in got.iter().zip(&want).zip(&magnitude).enumerate() {
            let what = format!("{ty} matmul {tokens} tokens [{i}]: {g} vs {w} (terms {m})");
            assert!((g as f64 - w).abs() <= 1e-5 * m.max(1.0), "{what}");
        }
    }
}

#[test]
fn matvec_every_weight_format_and_row_split() {
    // One thread per row (CPU adapters), and groups of 8 and 64 lanes (GPUs).
    for ty in ALL_TYPES {
        for adapter in [CPU, gpu(8), gpu(64)] {
            Matmul {
                ty,
                device: Device::on(adapter),
                ..Default::default()
            }
            .check();
        }
    }
}

#[test]
fn gpu_matvec_at_every_lane_count() {
    // matvec_gpu.wgsl: groups of 4 to 64 lanes over rows whose blocks (32 values; 64 for
    // Q4_K and Q5_K, 32 for Q6_K) do not divide evenly among the lanes, and row counts that
    // fill neither a group's four rows nor a workgroup.
    for ty in ALL_TYPES {
        for lanes in [4, 16, 32] {
            Matmul {
                ty,
                cols: 1280,
                device: Device::on(gpu(lanes)),
                ..Default::default()
            }
            .check();
        }
    }
    // A row length that is no whole number of blocks takes the general kernel.
    let odd = Matmul {
        ty: GgmlType::F16,
        rows: 5,
        cols: 200,
        device: Device::on(gpu(16)),
        ..Default::default()
    };
    odd.check();
}

#[test]
fn matmul_every_weight_format() {
    // The tiled matmul (GPUs) and blocks of matvec (CPU adapters), with a partial last block.
    for ty in ALL_TYPES {
        for adapter in [CPU, gpu(64)] {
            Matmul {
                ty,
                tokens: 45,
                device: Device::on(adapter),
                ..Default::default()
            }
            .check();
        }
    }
}

#[test]
fn general_kernels_for_inputs_without_uniform_windows() {
    // CPU adapters fall back to matvec / blocks of matvec for a plain storage input.
    for ty in [GgmlType::Q4K, GgmlType::Q8_0, GgmlType::F16] {
        for tokens in [1, 11] {
            let device = Device::on(CPU);
            Matmul {
                ty,
                tokens,
                device,
                input: Input::Storage,
                ..Default::default()
            }
            .check();
        }
    }
}

#[test]
fn eight_or_sixteen_rows_per_thread_at_any_row_count() {
    // The CPU-adapter kernel gives each thread eight or sixteen rows (by format) spread evenly:
    // row counts below eight, between eight and sixteen, not a multiple of either, and more
    // than one workgroup's worth (the last threads' rows are partly past the end).
    for ty in ALL_TYPES {
        for rows in [1, 3, 5, 13, 37, 16 * 16 + 6] {
            for tokens in [1, 3] {
                Matmul {
                    ty,
                    rows,
                    tokens,
                    device: Device::on(CPU),
                    ..Default::default()
                }
                .check();
            }
        }
    }
}

#[test]
fn windows_over_long_rows_and_many_tokens() {
    // Rows longer than one window (k slices that accumulate), and more tokens than fit in one
    // window (several token windows); on GPUs the same shapes run through the general kernels.
    let cases = [
        Matmul {
            ty: GgmlType::Q4_0,
            rows: 9,
            cols: 16384 + 1024,
            tokens: 2,
            ..Default::default()
        },
        Matmul {
            ty: GgmlType::Q6K,
            rows: 9,
            cols: 3 * 16384,
            tokens: 1,
            ..Default::default()
        },
        Matmul {
            ty: GgmlType::Q4_1,
            rows: 19,
            cols: 3072,
            tokens: 12,
            ..Default::default()
        },
    ];
    for case in cases {
        case.check();
    }
}

#[test]
fn matmul_and_matvec_over_row_chunks() {
    for ty in [GgmlType::Q6K, GgmlType::Q4_0, GgmlType::F16] {
        for (adapter, tokens) in [(gpu(4), 1), (CPU, 33), (gpu(64), 33)] {
            let device = Device {
                binding_limit: Some(16 << 10),
                ..Device::on(adapter)
            };
            Matmul {
                ty,
                rows: 70,
                tokens,
                device,
                ..Default::default()
            }
            .check();
        }
    }
}

/// y = y0 + W · rmsnorm(x) for `tokens` rows of x from row 1 on, through
/// `MatrixInput::normed`.
#[derive(Clone, Copy)]
struct NormedMatmul {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    tokens: usize,
    device: Device,
    /// Expected: the matrix kernel normalised as it read, leaving the norm's scratch buffer
    /// untouched (else rmsnorm.wgsl filled it first).
    fused: bool,
}

impl Default for NormedMatmul {
    fn default() -> Self {
        NormedMatmul {
            ty: GgmlType::F32,
            rows: 37,
            cols: 512,
            tokens: 1,
            device: Device::on(gpu(16)),
            fused: true,
        }
    }
}

impl NormedMatmul {
    fn check(self) {
        let NormedMatmul {
            ty,
            rows,
            cols,
            tokens,
            device,
            fused,
        } = self;
        let what = format!(
            "{ty} normed matmul, {rows} x {cols}, {tokens} tokens, {:?}, fusion {}, chunks of \
             {:?} bytes",
            device.adapter, device.fusion, device.binding_limit
        );
        let mut rng = StdRng::seed_from_u64(ty as u64 * 13 + tokens as u64 + cols as u64);
        let gpu = device.open();
        let raw = random_weights(&mut rng, ty, rows, cols);
        let w = dequantize(ty, &raw).unwrap();
        let m = pollster::block_on(matrix(&gpu, ty, &raw, rows, cols));
        assert_eq!(
            m.chunks.len() > 1,
            device.binding_limit.is_some(),
            "{what}: chunks"
        );
        let kernels = pollster::block_on(Kernels::new(&gpu, [ty], None)).unwrap();
        // Rows of very different scales (each token's 1/rms differs), a gain far from 1, and
        // an eps large enough to matter for the smallest row.
        let eps = 1e-2f32;
        let x: Vec<f32> = (0..tokens * cols)
            .map(|i| rng.random_range(-1.0f32..1.0) * [0.05, 3.0, 40.0][(i / cols) % 3])
            .collect();
        let gain: Vec<f32> = (0..cols).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let xb = session_input(&gpu, &[vec![9.0; cols], x.clone()].concat());
        let gain_vector = pollster::block_on(GpuVector::from_values(&gpu, "gain", &gain)).unwrap();
        let scratch = session_input(&gpu, &vec![UNTOUCHED; tokens * cols]);
        let (stride, offset) = (rows + 3, 2usize);
        let y0 = random_vec(&mut rng, tokens * stride);
        let yb = buffer(&gpu, &y0);
        let norm = RmsNorm {
            gain: &gain_vector,
            eps,
            scratch: &scratch,
        };
        let y = MatrixOutput::rows(&yb, stride as u32)
            .at(offset as u32)
            .adding();
        run(&gpu, &kernels, |rec| {
            rec.matmul(&m, MatrixInput::normed(&xb, 1, norm), tokens as u32, y)
        });
        let got = read(&gpu, &yb, tokens * stride);
        let scratch_untouched = read(&gpu, &scratch, tokens * cols)
            .iter()
            .all(|&v| v == UNTOUCHED);
        assert_eq!(
            scratch_untouched, fused,
            "{what}: normalised inside the matrix kernel"
        );
        let normed = rms_normed(&x, cols, &gain, eps);
        for t in 0..tokens {
            for r in 0..rows {
                let terms = (0..cols).map(|k| w[r * cols + k] as f64 * normed[t * cols + k]);
                let at = t * stride + offset + r;
                let want = y0[at] as f64 + terms.clone().sum::<f64>();
                let magnitude = (y0[at] as f64).abs() + terms.map(f64::abs).sum::<f64>();
                let g = got[at] as f64;
                let message = format!("{what}: y[{t}, {r}] = {g}, want {want} (terms {magnitude})");
                assert!((g - want).abs() <= 2e-5 * magnitude.max(1.0), "{message}");
            }
        }
    }
}

#[test]
fn rms_norm_fused_into_the_matrix_kernels() {
    let on = |lanes| Device::on(gpu(lanes));
    // GPUs: decode (matvec_gpu.wgsl, groups of 4 to 64 lanes) and prefill (matmul.wgsl, with
    // partial tiles) normalise as they read, for every format.
    for ty in ALL_TYPES {
        NormedMatmul {
            ty,
            cols: 1280,
            ..Default::default()
        }
        .check();
        NormedMatmul {
            ty,
            rows: 70,
            tokens: 45,
            device: on(64),
            ..Default::default()
        }
        .check();
    }
    for lanes in [4, 64] {
        NormedMatmul {
            ty: GgmlType::Q4K,
            cols: 1280,
            device: on(lanes),
            ..Default::default()
        }
        .check();
    }
    let cases = [
        // Long rows: each matvec thread sums x² over several vec4 of x (k / 4 > 64 threads).
        NormedMatmul {
            ty: GgmlType::Q8_0,
            rows: 9,
            cols: 3072,
            ..Default::default()
        },
        NormedMatmul {
            ty: GgmlType::Q8_0,
            rows: 9,
            cols: 3072,
            tokens: 3,
            device: on(64),
            ..Default::default()
        },
        // A row length that is no whole number of blocks: rmsnorm.wgsl, then the general matvec.
        NormedMatmul {
            ty: GgmlType::F16,
            rows: 5,
            cols: 200,
            fused: false,
            ..Default::default()
        },
        // Switched off, GPUs run rmsnorm.wgsl first too.
        NormedMatmul {
            ty: GgmlType::Q4K,
            device: Device {
                fusion: false,
                ..on(16)
            },
            fused: false,
            ..Default::default()
        },
        NormedMatmul {
            ty: GgmlType::Q4K,
            tokens: 5,
            device: Device {
                fusion: false,
                ..on(16)
            },
            fused: false,
            ..Default::default()
        },
    ];
    for case in cases {
        case.check();
    }
    // A matrix in row chunks (a large vocabulary's head): each chunk's dispatch normalises.
    for tokens in [1, 33] {
        let device = Device {
            binding_limit: Some(16 << 10),
            ..on(16)
        };
        NormedMatmul {
            ty: GgmlType::Q8_0,
            rows: 70,
            tokens,
            device,
            ..Default::default()
        }
        .check();
    }
    // CPU adapters keep rmsnorm.wgsl.
    for ty in [GgmlType::Q4_0, GgmlType::Q4K, GgmlType::Q6K] {
        for tokens in [1, 5] {
            let device = Device::on(CPU);
            NormedMatmul {
                ty,
                tokens,
                device,
                fused: false,
                ..Default::default()
            }
            .check();
        }
    }
}

/// `act = silu(W_gate x) * (W_up x)` through `Recorder::gated_ffn_input` for `n_ff` gate and
/// up rows, stacked in one matrix or (`separate`) as two, x RMS-normalised first where
/// `normed` (inside the matrix kernels on GPUs).
#[derive(Clone, Copy)]
struct Gated {
    ty: GgmlType,
    n_ff: usize,
    cols: usize,
    tokens: usize,
    adapter: AdapterKind,
    separate: bool,
    normed: bool,
    /// GELU (tanh approximation) in place of SiLU.
    gelu: bool,
    /// Expected: the matrix kernel applied the gate itself, leaving `gate_up` untouched.
    fused_gate: bool,
}

impl Default for Gated {
    fn default() -> Self {
        Gated {
            ty: GgmlType::F32,
            n_ff: 37,
            cols: 512,
            tokens: 1,
            adapter: gpu(16),
            separate: false,
            normed: false,
            gelu: false,
            fused_gate: true,
        }
    }
}

impl Gated {
    fn check(self) {
        let Gated {
            ty,
            n_ff,
            cols,
            tokens,
            adapter,
            separate,
            normed,
            gelu,
            fused_gate,
        } = self;
        let what = format!(
            "{ty} gated, n_ff {n_ff}, k {cols}, {tokens} tokens, {adapter:?}, separate \
             {separate}, normed {normed}, gelu {gelu}"
        );
        let mut rng = StdRng::seed_from_u64(ty as u64 * 7 + n_ff as u64);
        let gpu = Device::on(adapter).open();
        let raw = random_weights(&mut rng, ty, 2 * n_ff, cols);
        let w = dequantize(ty, &raw).unwrap();
        let upload = |raw: &[u8], rows| pollster::block_on(matrix(&gpu, ty, raw, rows, cols));
        let parts = if separate {
            let half = raw.len() / 2;
            vec![
                Projection {
                    weight: upload(&raw[..half], n_ff),
                    out_offset: 0,
                },
                Projection {
                    weight: upload(&raw[half..], n_ff),
                    out_offset: n_ff as u32,
                },
            ]
        } else {
            vec![Projection {
                weight: upload(&raw, 2 * n_ff),
                out_offset: 0,
            }]
        };
        let kernels = pollster::block_on(Kernels::new(&gpu, [ty], None)).unwrap();
        let raw_x: Vec<f32> = (0..tokens * cols)
            .map(|i| rng.random_range(-1.0f32..1.0) * (1 + i / cols) as f32)
            .collect();
        let gain: Vec<f32> = (0..cols).map(|_| rng.random_range(0.5f32..2.0)).collect();
        let eps = 1e-5;
        let xb = session_input(&gpu, &raw_x);
        let gain_vector = pollster::block_on(GpuVector::from_values(&gpu, "gain", &gain)).unwrap();
        let norm_scratch = session_input(&gpu, &vec![UNTOUCHED; tokens * cols]);
        let input = match normed {
            true => {
                let norm = RmsNorm {
                    gain: &gain_vector,
                    eps,
                    scratch: &norm_scratch,
                };
                MatrixInput::normed(&xb, 0, norm)
            }
            false => MatrixInput::rows(&xb, 0),
        };
        // What the products multiply: x itself or its norm.
        let x: Vec<f64> = match normed {
            true => rms_normed(&raw_x, cols, &gain, eps),
            false => raw_x.iter().map(|&v| v as f64).collect(),
        };
        let gate_up = buffer(&gpu, &vec![UNTOUCHED; tokens * 2 * n_ff]);
        let act = buffer(&gpu, &vec![0.0; tokens * n_ff]);
        run(&gpu, &kernels, |rec| {
            rec.gated_ffn_input(&parts, gelu, input, tokens as u32, &gate_up, &act)
        });
        let got = read(&gpu, &act, tokens * n_ff);
        let scratch_untouched = read(&gpu, &gate_up, tokens * 2 * n_ff)
            .iter()
            .all(|&v| v == UNTOUCHED);
        assert_eq!(
            scratch_untouched, fused_gate,
            "{what}: fused into the matrix kernel"
        );
        let norm_untouched = read(&gpu, &norm_scratch, tokens * cols)
            .iter()
            .all(|&v| v == UNTOUCHED);
        let norm_fused = !normed || adapter.is_gpu();
        assert_eq!(
            norm_untouched, norm_fused,
            "{what}: RMSNorm fused into the matrix kernels"
        );
        for t in 0..tokens {
            for i in 0..n_ff {
                // Each product and the magnitude of its terms, which bounds its f32 error.
                let product = |r: usize| {
                    let terms = (0..cols).map(|k| w[r * cols + k] as f64 * x[t * cols + k]);
                    (terms.clone().sum::<f64>(), terms.map(f64::abs).sum::<f64>())
                };
                let ((g, g_terms), (u, u_terms)) = (product(i), product(n_ff + i));
                let act = match gelu {
                    false => g / (1.0 + (-g).exp()),
                    true => {
                        let inner =
                            (2.0 / std::f64::consts::PI).sqrt() * (g + 0.044715 * g.powi(3));
                        0.5 * g * (1.0 + inner.tanh())
                    }
                };
                // Both activations' slopes stay below 1.2.
                let tol = 1e-5 * (1.2 * g_terms * u.abs() + u_terms * act.abs()) + 1e-6;
                let v = got[t * n_ff + i] as f64;
                assert!(
                    (v - act * u).abs() <= tol,
                    "{what}: act[{t}, {i}] = {v}, want {}",
                    act * u
                );
            }
        }
    }
}

#[test]
fn gated_activation_fused_into_the_matrix_kernel() {
    // GPUs: decoding fuses the gate for every format; prefill and separate gate/up tensors run
    // the products and gate.wgsl.
    for ty in ALL_TYPES {
        Gated {
            ty,
            ..Default::default()
        }
        .check();
    }
    Gated {
        ty: GgmlType::Q4K,
        tokens: 3,
        fused_gate: false,
        ..Default::default()
    }
    .check();
    Gated {
        ty: GgmlType::Q8_0,
        separate: true,
        fused_gate: false,
        ..Default::default()
    }
    .check();
    // CPU adapters fuse it for any number of tokens where each thread's rows pair gate with up
    // rows: 2 n_ff a multiple of its 8 (Q4_K, Q6_K, F16, ...) or 16 rows (Q4_0, Q4_1, Q8_0).
    let cpu = Gated {
        n_ff: 40,
        adapter: CPU,
        ..Default::default()
    };
    for ty in ALL_TYPES {
        for tokens in [1, 3] {
            Gated { ty, tokens, ..cpu }.check();
        }
    }
    let cases = [
        Gated {
            ty: GgmlType::Q4K,
            n_ff: 36,
            tokens: 2,
            ..cpu
        },
        Gated {
            ty: GgmlType::Q4_0,
            n_ff: 36,
            tokens: 2,
            fused_gate: false,
            ..cpu
        },
        Gated {
            ty: GgmlType::Q6K,
            separate: true,
            fused_gate: false,
            ..cpu
        },
        // Rows longer than one activation window are summed over several passes: not fused.
        Gated {
            ty: GgmlType::Q4_0,
            n_ff: 8,
            cols: 16384 + 512,
            fused_gate: false,
            ..cpu
        },
    ];
    for case in cases {
        case.check();
    }
}

#[test]
fn gelu_gate_in_every_gated_kernel() {
    // Gemma's GELU: fused on GPUs and CPU adapters, and in gate.wgsl after the products;
    // inputs scaled so that gates reach the tails, where tanh saturates.
    let gelu = Gated {
        gelu: true,
        cols: 2048,
        ..Default::default()
    };
    let cases = [
        Gated {
            ty: GgmlType::Q4K,
            ..gelu
        },
        Gated {
            ty: GgmlType::Q8_0,
            tokens: 3,
            fused_gate: false,
            ..gelu
        },
        Gated {
            ty: GgmlType::F16,
            n_ff: 40,
            tokens: 2,
            adapter: CPU,
            ..gelu
        },
        Gated {
            ty: GgmlType::Q6K,
            n_ff: 40,
            separate: true,
            adapter: CPU,
            fused_gate: false,
            ..gelu
        },
    ];
    for case in cases {
        case.check();
    }
}

#[test]
fn gated_activation_of_a_normalised_input() {
    // GPUs normalise inside the matrix kernel, gated (decode) or not (prefill, separate
    // tensors); CPU adapters normalise first and gate in the matrix kernel.
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4K,
        GgmlType::Q6K,
        GgmlType::Q5_1,
        GgmlType::F16,
    ] {
        Gated {
            ty,
            normed: true,
            ..Default::default()
        }
        .check();
        Gated {
            ty,
            n_ff: 40,
            tokens: 3,
            adapter: CPU,
            normed: true,
            ..Default::default()
        }
        .check();
    }
    let normed = Gated {
        normed: true,
        fused_gate: false,
        ..Default::default()
    };
    Gated {
        ty: GgmlType::Q4K,
        tokens: 3,
        ..normed
    }
    .check();
    Gated {
        ty: GgmlType::Q8_0,
        separate: true,
        ..normed
    }
    .check();
}

#[test]
fn embedding_gather_across_chunks() {
    let mut rng = StdRng::seed_from_u64(3);
    let gpu = Device {
        binding_limit: Some(8 << 10),
        ..Default::default()
    }
    .open();
    let (rows, cols) = (90, 256);
    for ty in [GgmlType::Q8_0, GgmlType::Q5K, GgmlType::Bf16] {
        let raw = random_weights(&mut rng, ty, rows, cols);
        let w = dequantize(ty, &raw).unwrap();
        let m = pollster::block_on(matrix(&gpu, ty, &raw, rows, cols));
        assert!(m.chunks.len() > 1);
        let kernels = pollster::block_on(Kernels::new(&gpu, [ty], None)).unwrap();
        let tokens = [0u32, 89, 45, 3, 60, 60, 17];
        let none = wgpu::BufferUsages::empty();
        let tb = pollster::block_on(gpu.storage_buffer("tokens", 28, none)).unwrap();
        gpu.queue
            .write_buffer(&tb, 0, bytemuck::cast_slice(&tokens));
        let out = buffer(&gpu, &vec![0.0; tokens.len() * cols]);
        run(&gpu, &kernels, |rec| {
            rec.embed(&m, 1.0, &tb, tokens.len() as u32, &out)
        });
        let got = read(&gpu, &out, tokens.len() * cols);
        let want: Vec<f64> = tokens
            .iter()
            .flat_map(|&t| {
                w[t as usize * cols..(t as usize + 1) * cols]
                    .iter()
                    .map(|&v| v as f64)
            })
            .collect();
        assert_close(&got, &want, 1e-6, &format!("{ty} embedding"));
    }
}

#[test]
fn rms_norm_rows_with_offset() {
    // 4 threads a row on CPU adapters, 64 on GPUs; n covers neither evenly.
    for adapter in [CPU, gpu(64)] {
        let mut rng = StdRng::seed_from_u64(4);
        let gpu = Device::on(adapter).open();
        let kernels = pollster::block_on(Kernels::new(&gpu, [], None)).unwrap();
        let (n, rows, eps) = (100, 5, 1e-5f32);
        let x = random_vec(&mut rng, rows * n);
        let wv = random_vec(&mut rng, n);
        let xb = buffer(&gpu, &x);
        let weight = pollster::block_on(GpuVector::from_values(&gpu, "w", &wv)).unwrap();
        let out = buffer(&gpu, &vec![0.0; 3 * n]);
        run(&gpu, &kernels, |rec| {
            rec.rms_norm(
                &xb,
                2,
                3,
                RmsNorm {
                    gain: &weight,
                    eps,
                    scratch: &out,
                },
            )
        });
        let got = read(&gpu, &out, 3 * n);
        let want = rms_normed(&x[2 * n..5 * n], n, &wv, eps);
        assert_close(&got, &want, 1e-5, &format!("rms_norm, {adapter:?}"));
    }
}

/// The rotation of a reference RoPE.
#[derive(Clone, Copy)]
struct Rotation<'f> {
    n_rot: usize,
    neox: bool,
    base: f64,
    freq: &'f [f32],
    freq_scale: f64,
    attn_factor: f64,
}

impl Rotation<'_> {
    /// One head rotated to `pos`: pairs (i, i + n_rot/2) or (2i, 2i+1) over the first n_rot
    /// dimensions.
    fn apply(&self, head: &[f32], pos: usize) -> Vec<f64> {
        let n_rot = self.n_rot;
        let mut out: Vec<f64> = head.iter().map(|&v| v as f64).collect();
        for (i, &factor) in self.freq.iter().enumerate().take(n_rot / 2) {
            let inv_freq = self.base.powf(-2.0 * i as f64 / n_rot as f64);
            let theta = pos as f64 * self.freq_scale * inv_freq / factor as f64;
            let (s, c) = theta.sin_cos();
            let (a, b) = if self.neox {
                (i, i + n_rot / 2)
            } else {
                (2 * i, 2 * i + 1)
            };
            let (x0, x1) = (head[a] as f64, head[b] as f64);
            out[a] = (x0 * c - x1 * s) * self.attn_factor;
            out[b] = (x0 * s + x1 * c) * self.attn_factor;
        }
        out
    }

    fn shape(&self, n_head: usize, n_kv: usize, hd: usize) -> RopeShape {
        RopeShape {
            n_head: n_head as u32,
            n_head_kv: n_kv as u32,
            head_dim: hd as u32,
            n_rot: self.n_rot as u32,
            qkv_stride: ((n_head + 2 * n_kv) * hd) as u32,
            neox: self.neox,
            base: self.base as f32,
            freq_scale: self.freq_scale as f32,
            attn_factor: self.attn_factor as f32,
            scale: 1.0 / (hd as f32).sqrt(),
            window: 0,
        }
    }
}

#[test]
fn rope_rotates_queries_and_stores_keys_and_values() {
    for kv in kv_formats() {
        check_rope(kv);
    }
}

/// RoPE into an f16 or f32 cache: keys within the cache format's rounding of the reference,
/// values exactly the cache format's rounding of the input.
fn check_rope(kv: KvFormat) {
    let mut rng = StdRng::seed_from_u64(5);
    let gpu = Device {
        kv: Some(kv),
        ..Default::default()
    }
    .open();
    let f16_cache = kv != KvFormat::F32;
    let kernels = pollster::block_on(Kernels::new(&gpu, [], None)).unwrap();
    let round = |v: f32| {
        if f16_cache {
            f16::from_f32(v).to_f32()
        } else {
            v
        }
    };
    let key_tol = if f16_cache { 1e-3 } else { 1e-4 };
    for neox in [true, false] {
        let (n_head, n_kv, hd, n_rot, tokens, pos0) = (6, 2, 80, 60, 3, 7);
        let stride = (n_head + 2 * n_kv) * hd;
        let freq: Vec<f32> = (0..n_rot / 2).map(|i| 1.0 + i as f32 * 0.1).collect();
        let rotation = Rotation {
            n_rot,
            neox,
            base: 10000.0,
            freq: &freq,
            freq_scale: 0.5,
            attn_factor: 1.2,
        };
        let shape = rotation.shape(n_head, n_kv, hd);
        let qkv = random_vec(&mut rng, tokens * stride);
        let qkv_b = buffer(&gpu, &qkv);
        let freq_b = pollster::block_on(GpuVector::from_values(&gpu, "freq", &freq)).unwrap();
        let cap = 16;
        let k_b = kv_buffer(&gpu, &vec![0.0; cap * n_kv * hd], f16_cache);
        let v_b = kv_buffer(&gpu, &vec![0.0; cap * n_kv * hd], f16_cache);
        let unused = buffer(&gpu, &[0.0]);
        let buffers = AttentionBuffers {
            qkv: &qkv_b,
            k_cache: &k_b,
            v_cache: &v_b,
            kv_rows: cap as u32,
            out: &unused,
            partials: &unused,
        };
        let at = Positions {
            pos0: pos0 as u32,
            n_tokens: tokens as u32,
        };
        run(&gpu, &kernels, |rec| {
            rec.rope_kv(&shape, &freq_b, at, &buffers)
        });
        let q_got = read(&gpu, &qkv_b, tokens * stride);
        let k_got = read_kv(&gpu, &k_b, cap * n_kv * hd, f16_cache);
        let v_got = read_kv(&gpu, &v_b, cap * n_kv * hd, f16_cache);
        for t in 0..tokens {
            let pos = pos0 + t;
            for h in 0..n_head + n_kv {
                let src = &qkv[t * stride + h * hd..t * stride + (h + 1) * hd];
                let mut want = rotation.apply(src, pos);
                let got = if h < n_head {
                    &q_got[t * stride + h * hd..t * stride + (h + 1) * hd]
                } else {
                    let kh = h - n_head;
                    &k_got[pos * n_kv * hd + kh * hd..pos * n_kv * hd + (kh + 1) * hd]
                };
                want.truncate(hd);
                let tol = if h < n_head { 1e-4 } else { key_tol };
                let what = format!("rope neox={neox} t={t} head {h}, {kv:?} cache");
                assert_close(got, &want, tol, &what);
            }
            for vh in 0..n_kv {
                let src = &qkv[t * stride + (n_head + n_kv + vh) * hd..][..hd];
                let got = &v_got[pos * n_kv * hd + vh * hd..][..hd];
                let want: Vec<f32> = src.iter().map(|&v| round(v)).collect();
                assert_eq!(got, &want[..], "v cache t={t} head {vh}, {kv:?} cache");
            }
        }
    }
}

/// `Recorder::rope_attention` for one decoded token after `pos0` cached positions: its query
/// and key rotated, its key and value stored at `pos0`, then attention over all `pos0 + 1`.
#[derive(Clone, Copy)]
struct RopeAttention {
    pos0: usize,
    n_head: usize,
    n_kv: usize,
    head_dim: usize,
    n_rot: usize,
    neox: bool,
    device: Device,
    /// Expected: attention_gpu.wgsl did the rotation itself (the query in `qkv` then stays
    /// unrotated) rather than rope_kv.wgsl before it.
    fused: bool,
}

impl Default for RopeAttention {
    fn default() -> Self {
        RopeAttention {
            pos0: 100,
            n_head: 6,
            n_kv: 2,
            head_dim: 64,
            n_rot: 48,
            neox: true,
            device: Device::on(gpu(16)),
            fused: true,
        }
    }
}

impl RopeAttention {
    fn check(self) {
        let RopeAttention {
            pos0,
            n_head,
            n_kv,
            head_dim: hd,
            n_rot,
            neox,
            device,
            fused,
        } = self;
        let kv = device.kv.expect("a KV format");
        let what = format!(
            "rope attention after {pos0}, {n_head}/{n_kv} heads {hd} wide, n_rot {n_rot}, neox \
             {neox}, {:?}, fusion {}, {kv:?} cache",
            device.adapter, device.fusion
        );
        let mut rng = StdRng::seed_from_u64(8 + pos0 as u64);
        let gpu = device.open();
        let f16_cache = kv != KvFormat::F32;
        let round = |v: f32| {
            if f16_cache {
                f16::from_f32(v).to_f32()
            } else {
                v
            }
        };
        let heads = HeadShape {
            n_head: n_head as u32,
            n_head_kv: n_kv as u32,
            head_dim: hd as u32,
        };
        let kernels = pollster::block_on(Kernels::new(&gpu, [], Some(heads))).unwrap();
        let (stride, kv_dim) = ((n_head + 2 * n_kv) * hd, n_kv * hd);
        let freq: Vec<f32> = (0..n_rot / 2).map(|i| 1.0 + i as f32 * 0.05).collect();
        let rotation = Rotation {
            n_rot,
            neox,
            base: 10000.0,
            freq: &freq,
            freq_scale: 0.5,
            attn_factor: 1.1,
        };
        let shape = rotation.shape(n_head, n_kv, hd);
        let qkv: Vec<f32> = random_vec(&mut rng, stride)
            .iter()
            .map(|v| v * 2.0)
            .collect();
        // Cached positions before pos0 (rounded as the cache holds them); pos0 and one past
        // it hold a sentinel the kernels must overwrite, and leave, respectively.
        let cap = pos0 + 2;
        let mut k: Vec<f32> = random_vec(&mut rng, cap * kv_dim)
            .into_iter()
            .map(round)
            .collect();
        let mut v: Vec<f32> = random_vec(&mut rng, cap * kv_dim)
            .into_iter()
            .map(round)
            .collect();
        for cache in [&mut k, &mut v] {
            cache[pos0 * kv_dim..].fill(UNTOUCHED);
        }
        let qkv_b = buffer(&gpu, &qkv);
        let (k_b, v_b) = (
            kv_buffer(&gpu, &k, f16_cache),
            kv_buffer(&gpu, &v, f16_cache),
        );
        let freq_b = pollster::block_on(GpuVector::from_values(&gpu, "freq", &freq)).unwrap();
        let out = buffer(&gpu, &vec![f32::NAN; n_head * hd]);
        let partials = buffer(&gpu, &vec![0.0; attention_partials_len(heads, cap)]);
        let buffers = AttentionBuffers {
            qkv: &qkv_b,
            k_cache: &k_b,
            v_cache: &v_b,
            kv_rows: cap as u32,
            out: &out,
            partials: &partials,
        };
        let at = Positions {
            pos0: pos0 as u32,
            n_tokens: 1,
        };
        run(&gpu, &kernels, |rec| {
            rec.rope_attention(&shape, &freq_b, at, &buffers)
        });
        let got = read(&gpu, &out, n_head * hd);
        let k_got = read_kv(&gpu, &k_b, cap * kv_dim, f16_cache);
        let v_got = read_kv(&gpu, &v_b, cap * kv_dim, f16_cache);
        assert_eq!(
            read(&gpu, &qkv_b, stride) == qkv,
            fused,
            "{what}: rotated inside attention"
        );
        // The new key and value in the cache, the position after untouched.
        for h in 0..n_kv {
            let new_key = rotation.apply(&qkv[(n_head + h) * hd..][..hd], pos0);
            let at = pos0 * kv_dim + h * hd;
            let tol = if f16_cache { 1e-3 } else { 1e-4 };
            assert_close(
                &k_got[at..at + hd],
                &new_key,
                tol,
                &format!("{what}: stored key {h}"),
            );
            let value = &qkv[(n_head + n_kv + h) * hd..][..hd];
            let new_value: Vec<f32> = value.iter().map(|&x| round(x)).collect();
            assert_eq!(
                &v_got[at..at + hd],
                &new_value[..],
                "{what}: stored value {h}"
            );
        }
        let past = (pos0 + 1) * kv_dim;
        let untouched = k_got[past..]
            .iter()
            .chain(&v_got[past..])
            .all(|&x| x == round(UNTOUCHED));
        assert!(untouched, "{what}: past the new position");
        // Attention of the rotated query over the stored keys (the cache's rounding of them).
        let mut want = Vec::new();
        for h in 0..n_head {
            let kvh = h / (n_head / n_kv);
            let q = rotation.apply(&qkv[h * hd..][..hd], pos0);
            let key = |j: usize, d: usize| k_got[j * kv_dim + kvh * hd + d] as f64;
            let scores: Vec<f64> = (0..=pos0)
                .map(|j| (0..hd).map(|d| q[d] * key(j, d)).sum::<f64>() / (hd as f64).sqrt())
                .collect();
            let max = scores.iter().cloned().fold(f64::MIN, f64::max);
            let p: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = p.iter().sum();
            for d in 0..hd {
                let value = |j: usize| v_got[j * kv_dim + kvh * hd + d] as f64;
                want.push(
                    p.iter()
                        .enumerate()
                        .map(|(j, &pj)| pj * value(j))
                        .sum::<f64>()
                        / sum,
                );
            }
        }
        assert_close(&got, &want, 1e-4, &what);
    }
}

#[test]
fn decoded_token_rotated_and_stored_inside_attention() {
    // GPUs: one split and several (the last one stores the new key), partial rotary in both
    // styles, a token's heads over two workgroups (32 a KV head); switched off, and on CPU
    // adapters, rope_kv.wgsl runs first.
    for kv in kv_formats() {
        let on = |adapter| Device {
            kv: Some(kv),
            ..Device::on(adapter)
        };
        for pos0 in [0, 30, 300] {
            RopeAttention {
                pos0,
                device: on(gpu(16)),
                ..Default::default()
            }
            .check();
        }
        let cases = [
            RopeAttention {
                pos0: 200,
                n_head: 4,
                head_dim: 96,
                n_rot: 96,
                neox: false,
                device: on(gpu(16)),
                ..Default::default()
            },
            RopeAttention {
                n_head: 32,
                n_kv: 1,
                head_dim: 32,
                n_rot: 16,
                device: on(gpu(16)),
                ..Default::default()
            },
            RopeAttention {
                device: Device {
                    fusion: false,
                    ..on(gpu(16))
                },
                fused: false,
                ..Default::default()
            },
            RopeAttention {
                pos0: 300,
                device: on(CPU),
                fused: false,
                ..Default::default()
            },
        ];
        for case in cases {
            case.check();
        }
    }
}

/// Attention of `tokens` queries after `pos0` cached positions, `n_head` query heads sharing
/// `n_kv` KV heads `head_dim` wide, over every KV format the adapter has (the reference reads
/// the cache's rounded values), or `kv` alone.
#[derive(Clone, Copy)]
struct Attention {
    tokens: usize,
    pos0: usize,
    n_head: usize,
    n_kv: usize,
    head_dim: usize,
    adapter: AdapterKind,
    kv: Option<KvFormat>,
    /// Scales the random queries (and so the scores).
    q_scale: f32,
    /// Positions a query sees (sliding-window layers); 0: all.
    window: usize,
    /// The kernels' query scale; None: 1/√head_dim.
    scale: Option<f32>,
    /// Rows of a ring cache (position p in row p % rows); None: a row per position.
    ring: Option<usize>,
    /// Relative error allowed.
    tol: f64,
}

impl Default for Attention {
    fn default() -> Self {
        Attention {
            tokens: 1,
            pos0: 0,
            n_head: 4,
            n_kv: 2,
            head_dim: 64,
            adapter: CPU,
            kv: None,
            q_scale: 3.0,
            window: 0,
            scale: None,
            ring: None,
            tol: 1e-4,
        }
    }
}

impl Attention {
    fn check(self) {
        let formats = self.kv.map_or_else(kv_formats, |kv| vec![kv]);
        for kv in formats {
            self.check_with(kv);
        }
    }

    fn check_with(self, kv: KvFormat) {
        let Attention {
            tokens,
            pos0,
            n_head,
            n_kv,
            head_dim: hd,
            adapter,
            q_scale,
            window,
            scale,
            ring,
            tol,
            ..
        } = self;
        let mut rng = StdRng::seed_from_u64(6);
        let gpu = Device {
            kv: Some(kv),
            ..Device::on(adapter)
        }
        .open();
        let f16_cache = kv != KvFormat::F32;
        let heads = HeadShape {
            n_head: n_head as u32,
            n_head_kv: n_kv as u32,
            head_dim: hd as u32,
        };
        let kernels = pollster::block_on(Kernels::new(&gpu, [], Some(heads))).unwrap();
        let stride = (n_head + 2 * n_kv) * hd;
        let kv_dim = n_kv * hd;
        let rotation = Rotation {
            n_rot: 0,
            neox: true,
            base: 1.0,
            freq: &[],
            freq_scale: 1.0,
            attn_factor: 1.0,
        };
        let shape = RopeShape {
            window: window as u32,
            scale: scale.unwrap_or(1.0 / (hd as f32).sqrt()),
            ..rotation.shape(n_head, n_kv, hd)
        };
        let qkv: Vec<f32> = random_vec(&mut rng, tokens * stride)
            .iter()
            .map(|v| v * q_scale)
            .collect();
        let cap = pos0 + tokens;
        // The cache holds what its format can: the reference reads the same rounded values.
        let round = |v: Vec<f32>| -> Vec<f32> {
            match f16_cache {
                true => v.iter().map(|&x| f16::from_f32(x).to_f32()).collect(),
                false => v,
            }
        };
        let k = round(random_vec(&mut rng, cap * kv_dim));
        let v = round(random_vec(&mut rng, cap * kv_dim));
        // A ring holds each position in row p % rows, later positions over earlier ones.
        let rows = ring.unwrap_or(cap);
        let as_ring = |values: &[f32]| {
            let mut held = vec![f32::NAN; rows * kv_dim];
            for (p, row) in values.chunks(kv_dim).enumerate() {
                held[(p % rows) * kv_dim..][..kv_dim].copy_from_slice(row);
            }
            held
        };
        let qkv_b = buffer(&gpu, &qkv);
        let (k_b, v_b) = (
            kv_buffer(&gpu, &as_ring(&k), f16_cache),
            kv_buffer(&gpu, &as_ring(&v), f16_cache),
        );
        // NaN where nothing should be written: a row the kernel skips shows.
        let out = buffer(&gpu, &vec![f32::NAN; tokens * n_head * hd]);
        let partials = buffer(&gpu, &vec![0.0; attention_partials_len(heads, cap)]);
        let buffers = AttentionBuffers {
            qkv: &qkv_b,
            k_cache: &k_b,
            v_cache: &v_b,
            kv_rows: rows as u32,
            out: &out,
            partials: &partials,
        };
        let at = Positions {
            pos0: pos0 as u32,
            n_tokens: tokens as u32,
        };
        run(&gpu, &kernels, |rec| rec.attention(&shape, at, &buffers));
        let got = read(&gpu, &out, tokens * n_head * hd);
        let mut want = Vec::new();
        for t in 0..tokens {
            for h in 0..n_head {
                let kvh = h / (n_head / n_kv);
                let q = &qkv[t * stride + h * hd..][..hd];
                let key = |j: usize, d: usize| k[j * kv_dim + kvh * hd + d] as f64;
                // The keys this query sees: all before it, or the last `window` of them.
                let pos = pos0 + t;
                let first = if window > 0 {
                    (pos + 1).saturating_sub(window)
                } else {
                    0
                };
                let scores: Vec<f64> = (first..=pos)
                    .map(|j| {
                        (0..hd).map(|d| q[d] as f64 * key(j, d)).sum::<f64>() * shape.scale as f64
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let p: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = p.iter().sum();
                for d in 0..hd {
                    let value = |j: usize| v[j * kv_dim + kvh * hd + d] as f64;
                    want.push(
                        p.iter()
                            .enumerate()
                            .map(|(i, &pi)| pi * value(first + i))
                            .sum::<f64>()
                            / sum,
                    );
                }
            }
        }
        let what = format!(
            "attention, {tokens} queries after {pos0}, {n_head}/{n_kv} heads {hd} wide, \
             window {window}, scale {scale:?}, ring {ring:?}, {adapter:?}, {kv:?} cache"
        );
        assert_close(&got, &want, tol, &what);
    }
}

#[test]
fn causal_attention_prefill_over_several_key_tiles() {
    // 40 tokens of 2 heads a KV head: rows of one token split across workgroups of 16 rows
    // (80 = 5 x 16), and keys over three 64-key tiles.
    for adapter in [CPU, gpu(64)] {
        let base = Attention {
            adapter,
            ..Default::default()
        };
        Attention {
            tokens: 3,
            pos0: 140,
            head_dim: 80,
            ..base
        }
        .check();
        Attention {
            tokens: 40,
            pos0: 100,
            head_dim: 128,
            ..base
        }
        .check();
    }
}

#[test]
fn sliding_window_attention_sees_only_the_last_positions() {
    // Prefill whose window starts mid-tile and moves with each row (rows of one workgroup see
    // different first keys); a window narrower than a workgroup's tokens; decode split over a
    // window (GPUs: splits of 64 from the window's start); a window wider than the context.
    for adapter in [CPU, gpu(64)] {
        for (tokens, pos0, window) in [
            (40, 100, 50),
            (30, 10, 5),
            (1, 900, 300),
            (1, 700, 1),
            (8, 20, 4096),
        ] {
            Attention {
                tokens,
                pos0,
                window,
                adapter,
                ..Default::default()
            }
            .check();
        }
    }
    // The window in a ring of rows (the window and one micro-batch), which the queries' keys
    // wrapped around: prefill, and decode split over the window.
    for adapter in [CPU, gpu(64)] {
        for (tokens, pos0, window) in [(20, 130, 50), (1, 900, 300)] {
            Attention {
                tokens,
                pos0,
                window,
                ring: Some(window + tokens - 1),
                adapter,
                ..Default::default()
            }
            .check();
        }
    }
    // A query scale other than 1/√head_dim (Gemma 3 27B's).
    Attention {
        tokens: 3,
        pos0: 10,
        scale: Some(0.3),
        ..Default::default()
    }
    .check();
}

#[test]
fn a_prompt_from_the_first_position() {
    // Each row's first tile holds its one visible key; later rows see the whole tile.
    for adapter in [CPU, gpu(64)] {
        Attention {
            tokens: 70,
            pos0: 0,
            n_head: 6,
            adapter,
            ..Default::default()
        }
        .check();
    }
}

#[test]
fn attention_with_scores_beyond_exp_range() {
    // Scores in the hundreds: exp overflows unless every tile subtracts the row's true
    // maximum so far, in prefill and in each decode split.
    for adapter in [CPU, gpu(64)] {
        for (tokens, pos0) in [(20, 150), (1, 700)] {
            let kv = Some(KvFormat::F32);
            Attention {
                tokens,
                pos0,
                adapter,
                kv,
                q_scale: 400.0,
                tol: 1e-3,
                ..Default::default()
            }
            .check();
        }
    }
}

#[test]
fn decode_attention_split_over_the_context() {
    // One query: one split on CPU adapters (≤ 256 keys), then two and an uneven four; on GPUs
    // splits of 64 keys.
    for adapter in [CPU, gpu(64)] {
        for pos0 in [100, 511, 900] {
            Attention {
                pos0,
                head_dim: 80,
                adapter,
                ..Default::default()
            }
            .check();
        }
    }
}

#[test]
fn decode_attention_beyond_the_largest_split_count() {
    // Past 256 x 64 keys each split grows by a tile.
    let long = Attention {
        pos0: 20000,
        n_head: 2,
        n_kv: 1,
        adapter: gpu(64),
        ..Default::default()
    };
    long.check();
}

#[test]
fn attention_for_every_head_grouping() {
    // Multi-head (1 query head per KV head), Phi-4-mini's 3, Phi-4's 4, and groups larger than
    // a workgroup's rows (32: a token's heads span two workgroups), prefill and decode.
    for adapter in [CPU, gpu(64)] {
        for (n_head, n_kv) in [(3, 3), (6, 2), (8, 2), (32, 1)] {
            let heads = Attention {
                n_head,
                n_kv,
                head_dim: 32,
                adapter,
                ..Default::default()
            };
            Attention {
                tokens: 5,
                pos0: 30,
                ..heads
            }
            .check();
            Attention {
                tokens: 1,
                pos0: 300,
                ..heads
            }
            .check();
        }
    }
}

#[test]
fn attention_at_every_head_width() {
    // Widths that fill 64 threads' output slots unevenly (68, 96, 196) up to the widest (256:
    // 8 rows a workgroup, one row group).
    for adapter in [CPU, gpu(64)] {
        for head_dim in [4, 64, 68, 96, 128, 196, 256] {
            let width = Attention {
                head_dim,
                adapter,
                ..Default::default()
            };
            Attention {
                tokens: 2,
                pos0: 20,
                ..width
            }
            .check();
            Attention {
                tokens: 20,
                pos0: 7,
                ..width
            }
            .check();
            Attention {
                tokens: 1,
                pos0: 300,
                ..width
            }
            .check();
        }
    }
}

#[test]
fn gate_on_odd_widths() {
    let mut rng = StdRng::seed_from_u64(7);
    let gpu = pollster::block_on(Gpu::new()).unwrap();
    let kernels = pollster::block_on(Kernels::new(&gpu, [], None)).unwrap();
    let (n_ff, tokens) = (100, 3);
    let gu: Vec<f32> = random_vec(&mut rng, tokens * 2 * n_ff)
        .iter()
        .map(|v| v * 6.0)
        .collect();
    let (gu_b, out) = (buffer(&gpu, &gu), buffer(&gpu, &vec![0.0; tokens * n_ff]));
    run(&gpu, &kernels, |rec| {
        rec.gate(n_ff as u32, false, tokens as u32, &gu_b, &out)
    });
    let got = read(&gpu, &out, tokens * n_ff);
    let want: Vec<f64> = (0..tokens)
        .flat_map(|t| {
            let gu = &gu;
            (0..n_ff).map(move |i| {
                let g = gu[t * 2 * n_ff + i] as f64;
                g / (1.0 + (-g).exp()) * gu[t * 2 * n_ff + n_ff + i] as f64
            })
        })
        .collect();
    assert_close(&got, &want, 1e-5, "gate");
}

#[test]
fn argmax_picks_the_first_of_equal_maxima() {
    // 4 threads on CPU adapters, 256 on GPUs.
    for adapter in [CPU, gpu(64)] {
        check_argmax(adapter);
    }
}

fn check_argmax(adapter: AdapterKind) {
    let mut rng = StdRng::seed_from_u64(8);
    let gpu = Device::on(adapter).open();
    let kernels = pollster::block_on(Kernels::new(&gpu, [], None)).unwrap();
    let argmax = |logits: &[f32]| {
        let (lb, rb) = (buffer(&gpu, logits), buffer(&gpu, &[0.0]));
        run(&gpu, &kernels, |rec| {
            rec.argmax(&lb, logits.len() as u32, &rb)
        });
        let bytes = pollster::block_on(gpu.read_storage(&rb, 4)).unwrap();
        u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize
    };
    for n in [1usize, 3, 5, 255, 1000, 1003, 4099, 200_064] {
        let logits = random_vec(&mut rng, n);
        // The maximum anywhere (the last few values are read one at a time, the rest four at a
        // time and four reads per step), with a tie that must lose: in the same 4 values, the
        // next vec4, the next step of the same thread, or another thread.
        for expected in [0, n / 3, n.saturating_sub(4), n - 1, rng.random_range(0..n)] {
            for later in [1, 2, 4, 255, 256, 1024, 4096] {
                let mut l = logits.clone();
                l[expected] = 7.5;
                if expected + later < n {
                    l[expected + later] = 7.5;
                }
                assert_eq!(
                    argmax(&l),
                    expected,
                    "n = {n}, tie {later} later, {adapter:?}"
                );
            }
            // An earlier tie wins instead.
            if expected > 0 {
                let mut l = logits.clone();
                l[expected] = 7.5;
                l[expected / 2] = 7.5;
                assert_eq!(
                    argmax(&l),
                    expected / 2,
                    "n = {n}, tie earlier, {adapter:?}"
                );
            }
        }
        assert_eq!(argmax(&vec![-2.0; n]), 0, "n = {n}, all equal");
    }
}

#[test]
fn top_k_keeps_the_best_128_over_several_rounds() {
    let mut rng = StdRng::seed_from_u64(9);
    let gpu = pollster::block_on(Gpu::new()).unwrap();
    let kernels = pollster::block_on(Kernels::new(&gpu, [], None)).unwrap();
    for n in [5usize, 2048, 2049, 100_352, 200_064] {
        // Quantized values make ties common: the lower token id must win them.
        let logits: Vec<f32> = (0..n)
            .map(|_| (rng.random_range(-1000..1000) as f32) * 0.01)
            .collect();
        let lb = buffer(&gpu, &logits);
        let words = (n as u64).div_ceil(2048) * 128;
        let scratch = [0, 1].map(|_| {
            (
                buffer(&gpu, &vec![0.0; words as usize]),
                buffer(&gpu, &vec![0.0; words as usize]),
            )
        });
        let mut rec = Recorder::new(&gpu, &kernels);
        let out = rec.top_k(&lb, n as u32, &scratch);
        rec.submit(&gpu, &mut SubmitCache::default(), |_| {});
        let values = read(&gpu, out.0, 128);
        let ids = pollster::block_on(gpu.read_storage(out.1, 128 * 4)).unwrap();
        let ids: Vec<u32> = bytemuck::pod_collect_to_vec(&ids);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        for i in 0..128.min(n) {
            assert_eq!(ids[i] as usize, order[i], "n = {n}, rank {i}");
            assert_eq!(values[i], logits[order[i]]);
        }
        for &id in &ids[n.min(128)..] {
            assert_eq!(id, u32::MAX, "padding past the vocabulary");
        }
    }
}

#[test]
fn stacked_tensors_multiply_as_one_matrix() {
    // Separate q, k, v (or gate, up) tensors, scattered through a file, uploaded as one
    // matrix: its products equal those of the rows concatenated beforehand, also when its
    // chunks and upload pieces straddle the tensors' boundaries.
    let mut rng = StdRng::seed_from_u64(12);
    let cases = [
        (GgmlType::Q8_0, None),
        (GgmlType::Q8_0, Some(4096)),
        (GgmlType::Q4K, Some(1024)),
        (GgmlType::F16, None),
    ];
    for (ty, binding_limit) in cases {
        let gpu = Device {
            binding_limit,
            ..Default::default()
        }
        .open();
        let cols = 256;
        let parts: Vec<Vec<u8>> = [6, 10, 4]
            .iter()
            .map(|&rows| random_weights(&mut rng, ty, rows, cols))
            .collect();
        let (mut file, mut infos) = (Vec::new(), Vec::new());
        for (i, raw) in parts.iter().enumerate() {
            file.extend((0..13).map(|_| rng.random::<u8>())); // unrelated bytes between tensors
            let rows = raw.len() / ty.bytes_for(cols as u64).unwrap() as usize;
            infos.push(TensorInfo {
                name: format!("part{i}"),
                dims: vec![cols as u64, rows as u64],
                ty,
                offset: file.len() as u64,
                n_bytes: raw.len() as u64,
            });
            file.extend(raw);
        }
        let refs: Vec<&TensorInfo> = infos.iter().collect();
        let stacked = pollster::block_on(GpuMatrix::upload_stacked(
            &gpu,
            &SliceSource(&file),
            &refs,
            |_| {},
        ));
        let stacked = stacked.unwrap();
        let whole = pollster::block_on(matrix(&gpu, ty, &parts.concat(), 20, cols));
        assert_eq!(
            (stacked.rows, stacked.name.as_str()),
            (20, "part0+part1+part2")
        );
        if binding_limit.is_some() {
            assert!(stacked.chunks.len() > 1, "{ty}: expected several chunks");
        }
        let kernels = pollster::block_on(Kernels::new(&gpu, [ty], None)).unwrap();
        let x = buffer(&gpu, &random_vec(&mut rng, cols));
        let products: Vec<Vec<f32>> = [&stacked, &whole]
            .iter()
            .map(|m| {
                let y = buffer(&gpu, &[0.0; 20]);
                let out = MatrixOutput::rows(&y, 20);
                run(&gpu, &kernels, |rec| {
                    rec.matmul(m, MatrixInput::rows(&x, 0), 1, out)
                });
                read(&gpu, &y, 20)
            })
            .collect();
        assert_eq!(
            products[0], products[1],
            "{ty}, binding limit {binding_limit:?}"
        );
    }
    // Parts of different types cannot share one matrix.
    let gpu = pollster::block_on(Gpu::new()).unwrap();
    let a = TensorInfo {
        name: "a".into(),
        dims: vec![32, 2],
        ty: GgmlType::Q8_0,
        offset: 0,
        n_bytes: 68,
    };
    let b = TensorInfo {
        name: "b".into(),
        dims: vec![32, 2],
        ty: GgmlType::F16,
        offset: 68,
        n_bytes: 128,
    };
    let err = pollster::block_on(GpuMatrix::upload_stacked(
        &gpu,
        &SliceSource(&[0u8; 196]),
        &[&a, &b],
        |_| {},
    ));
    let err = err.err().expect("mixed types rejected");
    assert!(
        err.to_string().contains("'b' cannot be stacked under 'a'"),
        "{err}"
    );
}

/// A token mask with `allowed` of every token set, at random, and its bits.
fn random_mask(rng: &mut StdRng, n: usize, allowed: f64) -> (Vec<u32>, Vec<bool>) {
    let bits: Vec<bool> = (0..n).map(|_| rng.random_bool(allowed)).collect();
    let mut words = vec![0u32; n.div_ceil(32)];
    for (t, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
        words[t / 32] |= 1 << (t % 32);
    }
    (words, bits)
}

#[test]
fn masked_argmax_and_top_k_equal_the_best_allowed_tokens() {
    // Structured output's masks: argmax and the top 128 over the tokens a mask allows, from
    // dense masks to ones allowing fewer tokens than top-k keeps, on both kernel sets.
    let mut rng = StdRng::seed_from_u64(21);
    for adapter in [CPU, gpu(64)] {
        let gpu = Device::on(adapter).open();
        let kernels = pollster::block_on(Kernels::new(&gpu, [], None)).unwrap();
        for (n, allowed) in [
            (1000, 0.5),
            (49_152, 0.9),
            (200_064, 0.01),
            (5000, 0.004),
            (33, 0.3),
        ] {
            let what = format!("{n} logits, {allowed} allowed, {adapter:?}");
            let logits: Vec<f32> = (0..n)
                .map(|_| (rng.random_range(-500..500) as f32) * 0.01)
                .collect();
            let (words, bits) = random_mask(&mut rng, n, allowed);
            let mut order: Vec<usize> = (0..n).filter(|&t| bits[t]).collect();
            order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
            assert!(!order.is_empty(), "{what}: the mask allows something");

            let (lb, mb, rb) = (
                buffer(&gpu, &logits),
                storage_words(&gpu, &words),
                buffer(&gpu, &[0.0]),
            );
            run(&gpu, &kernels, |rec| {
                rec.mask(&lb, n as u32, &mb);
                rec.argmax(&lb, n as u32, &rb);
            });
            let got = pollster::block_on(gpu.read_storage(&rb, 4)).unwrap();
            assert_eq!(
                u32::from_le_bytes(got[..4].try_into().unwrap()) as usize,
                order[0],
                "{what}: argmax"
            );

            let lb = buffer(&gpu, &logits);
            let words_per_round = (n as u64).div_ceil(2048) * 128;
            let scratch = [0, 1].map(|_| {
                let zeros = vec![0.0; words_per_round as usize];
                (buffer(&gpu, &zeros), buffer(&gpu, &zeros))
            });
            let mut rec = Recorder::new(&gpu, &kernels);
            rec.mask(&lb, n as u32, &mb);
            let (values, ids) = rec.top_k(&lb, n as u32, &scratch);
            rec.submit(&gpu, &mut SubmitCache::default(), |_| {});
            let ids: Vec<u32> = bytemuck::pod_collect_to_vec(
                &pollster::block_on(gpu.read_storage(ids, 128 * 4)).unwrap(),
            );
            let values = read(&gpu, values, 128);
            let kept = order.len().min(128);
            for i in 0..kept {
                assert_eq!(ids[i] as usize, order[i], "{what}: rank {i}");
                assert_eq!(values[i], logits[order[i]], "{what}: rank {i}");
            }
            // Past the allowed tokens, only disallowed ones (or top-k's padding, id u32::MAX),
            // at logits below any real one.
            for i in kept..128.min(n) {
                let id = ids[i] as usize;
                let disallowed = id == u32::MAX as usize || !bits[id];
                assert!(
                    disallowed && values[i] < -1e38,
                    "{what}: rank {i}: {id}, {}",
                    values[i]
                );
            }
        }
    }
}

/// A storage buffer holding `words`.
fn storage_words(gpu: &Gpu, words: &[u32]) -> GpuBuffer {
    let none = wgpu::BufferUsages::empty();
    let b = pollster::block_on(gpu.storage_buffer("mask", (words.len() * 4) as u64, none)).unwrap();
    gpu.queue.write_buffer(&b, 0, bytemuck::cast_slice(words));
    b
}
