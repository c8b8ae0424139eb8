// Causal attention over the KV cache, for prefill (many queries) and decode (one).
//
// Bindings:
//   0 params   uniform  AttnParams (below)
//   1 qkv      storage  f32 [n_tokens, qkv_stride]; query head h of token t at t*qkv_stride + h*head_dim
//   2 k_cache  storage  f32 [capacity, n_head_kv * head_dim], row = position
//   3 v_cache  storage  same layout
//   4 out      storage  f32 [n_tokens, n_head * head_dim]
//   5 partials storage  f32 [n_head, n_splits, head_dim + 2] (split decoding only)
// One workgroup per (query head, token, key split); query t at position pos0 + t sees keys
// 0..=pos0 + t. With one split the workgroup writes the normalized output. Decoding at long
// context splits the keys into ranges of `split_len` so that many workgroups share one query
// ("flash decoding"): each writes its unnormalized output, running maximum and sum to
// `partials`, and attention_combine.wgsl merges them.
// Keys are taken 64 at a time (one score per thread) with an online softmax: a running
// maximum and sum rescale the accumulated output, so no score array grows with the context.
// Each thread owns up to 4 output dimensions (head_dim ≤ 256).

struct AttnParams {
    pos0: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    qkv_stride: u32,
    scale: f32,
    // Keys per split (0: one split covering all keys) and the number of splits.
    split_len: u32,
    n_splits: u32,
}

@group(0) @binding(0) var<uniform> params: AttnParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;

const WG: u32 = 64u;
// WGSL has no infinity literal; exp() of anything minus this is 0.
const NEG_BIG: f32 = -3.0e38;

var<workgroup> q: array<f32, 256>;
var<workgroup> scores: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let t = wid.y;
    let hd = params.head_dim;
    let kv_dim = params.n_head_kv * hd;
    let kv_off = (h / (params.n_head / params.n_head_kv)) * hd;
    let n_visible = params.pos0 + t + 1u;
    let split = wid.z;
    var first_key = 0u;
    var n_keys = n_visible;
    if (params.split_len > 0u) {
        first_key = min(split * params.split_len, n_visible);
        n_keys = min(first_key + params.split_len, n_visible);
    }

    for (var d = lid; d < hd; d += WG) {
        q[d] = qkv[t * params.qkv_stride + h * hd + d] * params.scale;
    }
    workgroupBarrier();

    var running_max = NEG_BIG;
    var running_sum = 0.0;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var tile = first_key; tile < n_keys; tile += WG) {
        let key = tile + lid;
        var s = NEG_BIG;
        if (key < n_keys) {
            s = 0.0;
            let kb = key * kv_dim + kv_off;
            for (var d = 0u; d < hd; d++) {
                s += q[d] * k_cache[kb + d];
            }
        }
        scores[lid] = s;
        workgroupBarrier();

        let n_in_tile = min(WG, n_keys - tile);
        var tile_max = NEG_BIG;
        for (var j = 0u; j < n_in_tile; j++) {
            tile_max = max(tile_max, scores[j]);
        }
        let new_max = max(running_max, tile_max);
        let correction = exp(running_max - new_max);
        running_sum *= correction;
        for (var i = 0u; i < 4u; i++) {
            acc[i] *= correction;
        }
        for (var j = 0u; j < n_in_tile; j++) {
            let p = exp(scores[j] - new_max);
            running_sum += p;
            let vb = (tile + j) * kv_dim + kv_off;
            for (var i = 0u; i < 4u; i++) {
                let d = lid + i * WG;
                if (d < hd) {
                    acc[i] += p * v_cache[vb + d];
                }
            }
        }
        running_max = new_max;
        workgroupBarrier();
    }
    if (params.split_len > 0u) {
        let base = (h * params.n_splits + split) * (hd + 2u);
        for (var i = 0u; i < 4u; i++) {
            let d = lid + i * WG;
            if (d < hd) {
                partials[base + d] = acc[i];
            }
        }
        if (lid == 0u) {
            partials[base + hd] = running_max;
            partials[base + hd + 1u] = running_sum;
        }
        return;
    }
    for (var i = 0u; i < 4u; i++) {
        let d = lid + i * WG;
        if (d < hd) {
            out[t * params.n_head * hd + h * hd + d] = acc[i] / running_sum;
        }
    }
}
