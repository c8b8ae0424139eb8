//! Times the decode matvec alone, per weight format, on the default adapter:
//! `cargo run --release -p hearth-engine --example matvec_bench -- [rows] [cols] [reps] [types]`
//! (defaults: 3072 × 3072, Phi-4-mini's hidden size; 8 repetitions; q4_0,q4_1,q8_0,q4_k,q6_k,f16).
//! `HEARTH_TOKENS=n` times products with n tokens; `HEARTH_KERNELS=cpu|gpu|gpu:LANES` takes a
//! kernel set other than the adapter's own; `HEARTH_PLAIN_INPUT=1` gives x no uniform window
//! (general kernels);
//! `HEARTH_NORMED=1` RMS-normalises x first (fused into the kernel on GPUs, a separate
//! rmsnorm.wgsl dispatch per product on CPU adapters).
//! Prints weights per second and the weight bytes read per second.

use half::f16;
use hearth_engine::Gpu;
use hearth_engine::kernels::{
    Kernels, MatrixInput, MatrixOutput, Recorder, RmsNorm, SubmitCache, X_WINDOW_BYTES,
};
use hearth_engine::weights::{GpuMatrix, GpuVector};
use hearth_gguf::{GgmlType, SliceSource, TensorInfo};
use std::time::Instant;

/// Pseudo-random bytes (xorshift) with every f16 scale field set to a small normal value, so
/// that no NaN or subnormal slows a CPU adapter down.
fn weights(ty: GgmlType, n: usize) -> Vec<u8> {
    let mut s = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let small = |v: u64| f16::from_f32(0.001 + (v % 1000) as f32 * 1e-5).to_le_bytes();
    match ty {
        GgmlType::F16 => (0..n).flat_map(|_| small(next())).collect(),
        _ => {
            let (block, size) = ty.block_layout();
            let mut raw: Vec<u8> = (0..n / block * size).map(|_| next() as u8).collect();
            let scales: &[usize] = match ty {
                GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 => &[0],
                GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
                GgmlType::Q6K => &[208],
                _ => &[],
            };
            for b in raw.chunks_exact_mut(size) {
                for &at in scales {
                    b[at..at + 2].copy_from_slice(&small(next()));
                }
            }
            raw
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3072);
    let cols: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3072);
    let reps: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(8);
    let types = args
        .get(4)
        .map(String::as_str)
        .unwrap_or("q4_0,q4_1,q8_0,q4_k,q6_k,f16");
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let tokens = env("HEARTH_TOKENS").unwrap_or(1);
    let mut gpu = pollster::block_on(Gpu::new()).expect("a GPU adapter");
    if let Ok(kernels) = std::env::var("HEARTH_KERNELS") {
        gpu.set_adapter_kind(kernels.parse().expect("HEARTH_KERNELS"))
            .expect("HEARTH_KERNELS");
    }
    let input_usage = if env("HEARTH_PLAIN_INPUT") == Some(1) {
        wgpu::BufferUsages::empty()
    } else {
        wgpu::BufferUsages::UNIFORM
    };
    println!(
        "{}: {rows} x {cols}, {tokens} tokens, {reps} products per submission",
        gpu.adapter_name()
    );
    for name in types.split(',') {
        let ty = (0..64)
            .filter_map(GgmlType::from_id)
            .find(|t| t.name().eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("unknown type {name}"));
        let raw = weights(ty, rows * cols);
        let info = TensorInfo {
            name: name.into(),
            dims: vec![cols as u64, rows as u64],
            ty,
            offset: 0,
            n_bytes: raw.len() as u64,
        };
        let m = pollster::block_on(GpuMatrix::upload(&gpu, &SliceSource(&raw), &info, |_| {}))
            .expect("upload");
        let kernels = pollster::block_on(Kernels::new(&gpu, [ty], None)).expect("kernels");
        let x = pollster::block_on(gpu.storage_buffer(
            "x",
            (tokens as usize * cols) as u64 * 4 + X_WINDOW_BYTES,
            input_usage,
        ))
        .unwrap();
        let xs: Vec<f32> = (0..tokens as usize * cols)
            .map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0)
            .collect();
        gpu.queue.write_buffer(&x, 0, bytemuck::cast_slice(&xs));
        let gain =
            pollster::block_on(GpuVector::from_values(&gpu, "gain", &vec![1.5; cols])).unwrap();
        let scratch = pollster::block_on(gpu.storage_buffer(
            "normed",
            (tokens as usize * cols) as u64 * 4 + X_WINDOW_BYTES,
            input_usage,
        ))
        .unwrap();
        let norm = RmsNorm {
            gain: &gain,
            eps: 1e-5,
            scratch: &scratch,
        };
        let input = if env("HEARTH_NORMED") == Some(1) {
            MatrixInput::normed(&x, 0, norm)
        } else {
            MatrixInput::rows(&x, 0)
        };
        let y = pollster::block_on(gpu.storage_buffer(
            "y",
            (tokens as usize * rows) as u64 * 4,
            wgpu::BufferUsages::empty(),
        ))
        .unwrap();
        let mut cache = SubmitCache::default();
        let mut run = || {
            let mut rec = Recorder::new(&gpu, &kernels);
            for _ in 0..reps {
                rec.matmul(&m, input, tokens, MatrixOutput::rows(&y, rows as u32));
            }
            rec.submit(&gpu, &mut cache, |_| {});
            pollster::block_on(gpu.read_storage(&y, 4)).unwrap();
        };
        run(); // compile and warm up
        let start = Instant::now();
        run();
        let s = start.elapsed().as_secs_f64() / reps as f64 / tokens as f64;
        let n = (rows * cols) as f64;
        println!(
            "{ty:>5}: {:8.2} ms per token, {:7.1} M weights/s, {:6.2} GB/s of weights",
            s * 1e3,
            n / s / 1e6,
            raw.len() as f64 / s / 1e9
        );
    }
}
