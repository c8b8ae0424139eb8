// RoPE on the fresh queries and keys, fused with the KV-cache store.
//
// Bindings:
//   0 params     uniform  RopeParams (below)
//   1 qkv        storage  f32 [n_tokens, qkv_stride]: per token n_head query heads, then
//                         n_head_kv key heads, then n_head_kv value heads, head_dim each
//   2 freq       storage  f32 [n_rot / 2] frequency divisors (LongRoPE factors; ones if none)
//   3 k_cache    storage  KvWord [kv_rows, n_head_kv * head_dim / 4], row = position % kv_rows; a
//                         KvWord holds four values: vec4 of f32, vec4 of f16 where the
//                         device has shader-f16, else two u32 of packed f16 pairs (the host
//                         prepends KvWord and its kv_word; kernels/source.rs: kv_prelude)
//   4 v_cache    storage  same layout as k_cache
// Workgroup (token t, head h) over h in [0, n_head + 2 n_head_kv): queries are rotated in
// place, keys rotated into k_cache and values copied into v_cache at position pos0 + t (a
// sliding-window layer's cache is a ring of kv_rows rows: the window and a micro-batch), one
// cache word (four values; head_dim is a multiple of 4) per thread and step. The rotation
// itself: rope_common.wgsl (prepended by the host). On GPUs a decoded token skips this
// kernel: attention_gpu.wgsl rotates and stores it (its `rope` parameter).

struct RopeParams {
    @size(32) rotation: Rope,
    pos0: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    qkv_stride: u32,
    kv_rows: u32,
}

@group(0) @binding(0) var<uniform> params: RopeParams;
@group(0) @binding(1) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> freq: array<f32>;
@group(0) @binding(3) var<storage, read_write> k_cache: array<KvWord>;
@group(0) @binding(4) var<storage, read_write> v_cache: array<KvWord>;

const WG: u32 = 64u;

fn pair(i: u32) -> vec2<u32> {
    if (params.rotation.neox == 1u) {
        return vec2<u32>(i, i + params.rotation.n_rot / 2u);
    }
    return vec2<u32>(2u * i, 2u * i + 1u);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wid.x;
    let head = wid.y;
    let hd = params.head_dim;
    let pos = params.pos0 + t;
    let kv_dim = params.n_head_kv * hd;
    let row = t * params.qkv_stride;
    let n_q = params.n_head * hd;
    let rope = params.rotation;

    if (head < params.n_head) {
        // Query head: rotated in place, a pair per step.
        let src = row + head * hd;
        for (var i = lid; i < rope.n_rot / 2u; i += WG) {
            let p = pair(i);
            let cs = rope_rotation(rope, i, pos);
            let x0 = qkv[src + p.x];
            let x1 = qkv[src + p.y];
            qkv[src + p.x] = x0 * cs.x - x1 * cs.y;
            qkv[src + p.y] = x0 * cs.y + x1 * cs.x;
        }
        return;
    }
    let is_key = head < params.n_head + params.n_head_kv;
    let kv_head = select(head - params.n_head - params.n_head_kv, head - params.n_head, is_key);
    let src = row + n_q + select(kv_dim, 0u, is_key) + kv_head * hd;
    let dst = ((pos % params.kv_rows) * kv_dim + kv_head * hd) / 4u;
    for (var w = lid; w < hd / 4u; w += WG) {
        let d = 4u * w;
        if (is_key) {
            k_cache[dst + w] = kv_word(rope_rotated4(rope, src, d, pos));
        } else {
            v_cache[dst + w] = kv_word(vec4<f32>(qkv[src + d], qkv[src + d + 1u], qkv[src + d + 2u], qkv[src + d + 3u]));
        }
    }
}
