// Causal attention over the KV cache on CPU-emulated adapters, for prefill (many queries) and
// decode (one). GPUs take attention_gpu.wgsl, which reads each key once for a tile of queries
// but keeps them in arrays that CPU adapters, running loops as written, hold in memory
// (measured: docs/perf-notes.md).
//
// Bindings:
//   0 params   uniform  AttnParams (attention_common.wgsl, which declares these bindings)
//   1 qkv      storage  f32 [n_tokens, qkv_stride]; query head h of token t at t*qkv_stride + h*head_dim
//   2 k_cache  storage  KvWord [kv_rows, n_head_kv * head_dim / 4], row = position % kv_rows: four
//                       values each (f32, f16 or packed f16: see rope_kv.wgsl)
//   3 v_cache  storage  same layout
//   4 out      storage  f32 [n_tokens, n_head * head_dim]
//   5 partials storage  f32 [n_head, n_splits, head_dim + 2] (split decoding only)
// One workgroup per (query head, token, key split); query t at position p = pos0 + t sees keys
// 0..=p, or with a `window` only the last `window` of them. With one split the workgroup writes the normalized output. Decoding at long
// context splits the keys into ranges of `split_len` so that many workgroups share one query
// ("flash decoding"): each writes its unnormalized output, running maximum and sum to
// `partials`, and attention_combine.wgsl merges them.
// Keys are taken WG at a time (one score per thread) with an online softmax: a running
// maximum and sum rescale the accumulated output, so no score array grows with the context.
// Reads are vec4 (head_dim is a multiple of 4, at most 256); each thread owns up to four
// vec4 of output dimensions: slots lid + i * WG. As every value a thread reads costs
// (SwiftShader gathers it lane by lane) and each thread re-reads the tile's scores, WG is the
// fewest of 4, 8, 16 that cover the head (4 for heads of 64: twice as fast there as 16).

override WG: u32 = 64u;
// WGSL has no infinity literal; exp() of anything minus this is 0.
const NEG_BIG: f32 = -3.0e38;

var<workgroup> q: array<vec4<f32>, 64>;
var<workgroup> scores: array<f32, 64>;

/// Writes four output dimensions to `partials` or `out` from index `at` on.
fn write4(at: u32, v: vec4<f32>, to_partials: bool) {
    if (to_partials) {
        partials[at] = v.x;
        partials[at + 1u] = v.y;
        partials[at + 2u] = v.z;
        partials[at + 3u] = v.w;
    } else {
        out[at] = v.x;
        out[at + 1u] = v.y;
        out[at + 2u] = v.z;
        out[at + 3u] = v.w;
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let t = wid.y;
    let hd = params.head_dim;
    let hd4 = hd / 4u;
    let kv_dim4 = params.n_head_kv * hd4;
    let kv_off4 = (h / (params.n_head / params.n_head_kv)) * hd4;
    let n_visible = params.pos0 + t + 1u;
    var window_start = 0u;
    if (params.window > 0u && n_visible > params.window) {
        window_start = n_visible - params.window;
    }
    let split = wid.z;
    var first_key = window_start;
    var n_keys = n_visible;
    if (params.split_len > 0u) {
        first_key = min(window_start + split * params.split_len, n_visible);
        n_keys = min(first_key + params.split_len, n_visible);
    }

    for (var d = lid; d < hd4; d += WG) {
        let at = t * params.qkv_stride + h * hd + 4u * d;
        q[d] = vec4<f32>(qkv[at], qkv[at + 1u], qkv[at + 2u], qkv[at + 3u]) * params.scale;
    }
    workgroupBarrier();

    var running_max = NEG_BIG;
    var running_sum = 0.0;
    // Output slots lid + i * WG, i < 4, unrolled: CPU adapters run loops as written.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var tile = first_key; tile < n_keys; tile += WG) {
        let key = tile + lid;
        var s = NEG_BIG;
        if (key < n_keys) {
            s = 0.0;
            let kb = (key % params.kv_rows) * kv_dim4 + kv_off4;
            for (var d = 0u; d < hd4; d++) {
                s += dot(q[d], kv4(k_cache[kb + d]));
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
        acc0 *= correction;
        acc1 *= correction;
        acc2 *= correction;
        acc3 *= correction;
        // The cache row of key tile + j, stepped (a ring wraps to row 0).
        var row = tile % params.kv_rows;
        for (var j = 0u; j < n_in_tile; j++) {
            let p = exp(scores[j] - new_max);
            running_sum += p;
            let vb = row * kv_dim4 + kv_off4 + lid;
            row = select(row + 1u, 0u, row + 1u == params.kv_rows);
            if (lid < hd4) {
                acc0 += p * kv4(v_cache[vb]);
            }
            if (lid + WG < hd4) {
                acc1 += p * kv4(v_cache[vb + WG]);
            }
            if (lid + 2u * WG < hd4) {
                acc2 += p * kv4(v_cache[vb + 2u * WG]);
            }
            if (lid + 3u * WG < hd4) {
                acc3 += p * kv4(v_cache[vb + 3u * WG]);
            }
        }
        running_max = new_max;
        workgroupBarrier();
    }
    let split_out = params.split_len > 0u;
    var base = t * params.n_head * hd + h * hd;
    var norm = 1.0 / running_sum;
    if (split_out) {
        base = (h * params.n_splits + split) * (hd + 2u);
        norm = 1.0;
        if (lid == 0u) {
            partials[base + hd] = running_max;
            partials[base + hd + 1u] = running_sum;
        }
    }
    if (lid < hd4) {
        write4(base + 4u * lid, acc0 * norm, split_out);
    }
    if (lid + WG < hd4) {
        write4(base + 4u * (lid + WG), acc1 * norm, split_out);
    }
    if (lid + 2u * WG < hd4) {
        write4(base + 4u * (lid + 2u * WG), acc2 * norm, split_out);
    }
    if (lid + 3u * WG < hd4) {
        write4(base + 4u * (lid + 3u * WG), acc3 * norm, split_out);
    }
}
