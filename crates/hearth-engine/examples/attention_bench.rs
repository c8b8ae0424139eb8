//! Times attention alone on the default adapter, Phi-4-mini's heads by default:
//! `cargo run --release -p hearth-engine --example attention_bench --
//!  [n_head] [n_head_kv] [head_dim] [reps]`
//! `HEARTH_CASES="1@512,1@4096,512@0"` lists the queries@cached-positions timed (decode is
//! one query); `HEARTH_KERNELS=cpu|gpu` takes a kernel set other than the adapter's own;
//! `HEARTH_KV=f32|f16|packed` the cache format.
//! Prints milliseconds per call and the key/value bytes read per second.

use hearth_engine::kernels::{
    AttentionBuffers, HeadShape, Kernels, Positions, Recorder, RopeShape, SubmitCache,
    attention_partials_len,
};
use hearth_engine::{Gpu, KvFormat};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u32| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (n_head, n_head_kv, head_dim, reps) = (arg(1, 24), arg(2, 8), arg(3, 128), arg(4, 8));
    let cases = std::env::var("HEARTH_CASES").unwrap_or_else(|_| "1@512,1@4096,512@0".into());
    let mut gpu = pollster::block_on(Gpu::new()).expect("a GPU adapter");
    if let Ok(kernels) = std::env::var("HEARTH_KERNELS") {
        gpu.set_adapter_kind(kernels.parse().expect("HEARTH_KERNELS"))
            .expect("HEARTH_KERNELS");
    }
    if let Ok(kv) = std::env::var("HEARTH_KV") {
        let kv = match kv.as_str() {
            "f32" => KvFormat::F32,
            "f16" => KvFormat::F16,
            "packed" => KvFormat::PackedF16,
            _ => panic!("HEARTH_KV: f32, f16 or packed"),
        };
        assert!(
            gpu.set_kv_format(kv),
            "this adapter cannot hold a {kv:?} cache"
        );
    }
    let heads = HeadShape {
        n_head,
        n_head_kv,
        head_dim,
    };
    let kernels = pollster::block_on(Kernels::new(&gpu, [], Some(heads))).expect("kernels");
    println!(
        "{}: {n_head}/{n_head_kv} heads of {head_dim}, {:?} cache, {reps} calls per submission",
        gpu.adapter_name(),
        gpu.tuning().kv_format
    );
    let stride = (n_head + 2 * n_head_kv) * head_dim;
    let shape = RopeShape {
        n_head,
        n_head_kv,
        head_dim,
        n_rot: 0,
        qkv_stride: stride,
        neox: true,
        base: 1.0,
        freq_scale: 1.0,
        attn_factor: 1.0,
        scale: 1.0 / (head_dim as f32).sqrt(),
        window: 0,
    };
    for case in cases.split(',') {
        let (tokens, pos0) = case
            .split_once('@')
            .and_then(|(t, p)| Some((t.parse::<u32>().ok()?, p.parse::<u32>().ok()?)))
            .expect("cases as tokens@pos0");
        let n_keys = (pos0 + tokens) as u64;
        let kv_bytes =
            n_keys * (n_head_kv * head_dim) as u64 * gpu.tuning().kv_format.value_bytes() as u64;
        let buffer = |label: &str, bytes: u64| {
            pollster::block_on(gpu.storage_buffer(label, bytes, wgpu::BufferUsages::empty()))
                .unwrap()
        };
        let qkv = buffer("qkv", (tokens * stride) as u64 * 4);
        let values: Vec<f32> = (0..tokens * stride)
            .map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0)
            .collect();
        gpu.queue
            .write_buffer(&qkv, 0, bytemuck::cast_slice(&values));
        // Zeroed caches are valid in every cache type (f16 zero is all-zero bits).
        let (k, v) = (buffer("k", kv_bytes), buffer("v", kv_bytes));
        let out = buffer("out", (tokens * n_head * head_dim) as u64 * 4);
        let partials = buffer(
            "partials",
            attention_partials_len(heads, n_keys as usize) as u64 * 4,
        );
        let mut cache = SubmitCache::default();
        let mut run = || {
            let mut rec = Recorder::new(&gpu, &kernels);
            let buffers = AttentionBuffers {
                qkv: &qkv,
                k_cache: &k,
                v_cache: &v,
                kv_rows: n_keys as u32,
                out: &out,
                partials: &partials,
            };
            for _ in 0..reps {
                rec.attention(
                    &shape,
                    Positions {
                        pos0,
                        n_tokens: tokens,
                    },
                    &buffers,
                );
            }
            rec.submit(&gpu, &mut cache, |_| {});
            pollster::block_on(gpu.read_storage(&out, 4)).unwrap();
        };
        run(); // compile and warm up
        let start = Instant::now();
        run();
        let s = start.elapsed().as_secs_f64() / reps as f64;
        // Every query row reads the keys it sees; the cache holds both K and V.
        println!(
            "{tokens:>5} queries after {pos0:>6}: {:9.3} ms, {:7.2} GB/s of K and V",
            s * 1e3,
            2.0 * kv_bytes as f64 / s / 1e9
        );
    }
}
