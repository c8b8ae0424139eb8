// The parameters and bindings both attention kernels share (attention_cpu.wgsl and
// attention_gpu.wgsl, whose headers give the buffer layouts); the host prepends this file
// after the KV-cache prelude that defines KvWord and rope_params.wgsl.

struct AttnParams {
    // The rotation (attention_gpu.wgsl with `rotate`).
    @size(32) rotation: Rope,
    pos0: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    qkv_stride: u32,
    scale: f32,
    // Keys per split (0: one split covering all keys) and the number of splits.
    split_len: u32,
    n_splits: u32,
    n_tokens: u32,
    // Whether attention_gpu.wgsl rotates a decoded token's query and key and stores the key
    // and value itself (1).
    rotate: u32,
    // Positions a query sees, itself included (sliding-window layers); 0: every earlier one.
    window: u32,
    // Rows the caches hold: position p is row p % kv_rows (a ring on sliding-window layers).
    kv_rows: u32,
}

@group(0) @binding(0) var<uniform> params: AttnParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
// Written only by attention_gpu.wgsl with `rope` (a decoded token's key and value).
@group(0) @binding(2) var<storage, read_write> k_cache: array<KvWord>;
@group(0) @binding(3) var<storage, read_write> v_cache: array<KvWord>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;
