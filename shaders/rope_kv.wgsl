// RoPE on the fresh queries and keys, fused with the KV-cache store.
//
// Bindings:
//   0 params     uniform  RopeParams (below)
//   1 qkv        storage  f32 [n_tokens, qkv_stride]: per token n_head query heads, then
//                         n_head_kv key heads, then n_head_kv value heads, head_dim each
//   2 freq       storage  f32 [n_rot / 2] frequency divisors (LongRoPE factors; ones if none)
//   3 k_cache    storage  KvValue [capacity, n_head_kv * head_dim], row = position; KvValue
//                         is f16 where the device has shader-f16, else f32 (the host
//                         prepends its alias)
//   4 v_cache    storage  same layout as k_cache
// Workgroup (token t, head h) over h in [0, n_head + 2 n_head_kv): queries are rotated in
// place, keys rotated into k_cache, values copied into v_cache, at position pos0 + t.
// Pair i of the first n_rot dimensions is (i, i + n_rot/2) in NeoX style, (2i, 2i+1) in the
// original style; angle = pos * freq_scale * base^(-2i/n_rot) / freq[i]; cos and sin are
// scaled by attn_factor (LongRoPE). Dimensions past n_rot pass through unchanged.

struct RopeParams {
    pos0: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    n_rot: u32,
    qkv_stride: u32,
    neox: u32,
    log2_base: f32,
    freq_scale: f32,
    attn_factor: f32,
}

@group(0) @binding(0) var<uniform> params: RopeParams;
@group(0) @binding(1) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> freq: array<f32>;
@group(0) @binding(3) var<storage, read_write> k_cache: array<KvValue>;
@group(0) @binding(4) var<storage, read_write> v_cache: array<KvValue>;

const WG: u32 = 64u;

fn pair(i: u32) -> vec2<u32> {
    if (params.neox == 1u) {
        return vec2<u32>(i, i + params.n_rot / 2u);
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

    if (head >= params.n_head + params.n_head_kv) {
        // Value head: copy into the cache.
        let vh = head - params.n_head - params.n_head_kv;
        for (var d = lid; d < hd; d += WG) {
            v_cache[pos * kv_dim + vh * hd + d] = KvValue(qkv[row + n_q + kv_dim + vh * hd + d]);
        }
        return;
    }
    let is_query = head < params.n_head;
    var src = row + head * hd;
    var dst = pos * kv_dim + (head - params.n_head) * hd;
    if (!is_query) {
        src = row + n_q + (head - params.n_head) * hd;
    }
    for (var i = lid; i < params.n_rot / 2u; i += WG) {
        let p = pair(i);
        let inv_freq = exp2(-params.log2_base * f32(2u * i) / f32(params.n_rot));
        let theta = f32(pos) * params.freq_scale * inv_freq / freq[i];
        let c = cos(theta) * params.attn_factor;
        let s = sin(theta) * params.attn_factor;
        let x0 = qkv[src + p.x];
        let x1 = qkv[src + p.y];
        let r0 = x0 * c - x1 * s;
        let r1 = x0 * s + x1 * c;
        if (is_query) {
            qkv[src + p.x] = r0;
            qkv[src + p.y] = r1;
        } else {
            k_cache[dst + p.x] = KvValue(r0);
            k_cache[dst + p.y] = KvValue(r1);
        }
    }
    if (!is_query) {
        for (var d = params.n_rot + lid; d < hd; d += WG) {
            k_cache[dst + d] = KvValue(qkv[src + d]);
        }
    }
}
