// Greedy sampling on the GPU: result[0] = the index of the largest of logits[0..n) (the
// lowest index among equal maxima, as llama.cpp's greedy sampler picks), so decoding reads
// back 4 bytes instead of the vocabulary.
//
// Bindings:
//   0 params   uniform  ArgmaxParams (below)
//   1 logits   storage  f32 [n]
//   2 result   storage  u32 [1]
//   3 logits4  storage  the same buffer as `logits`, read 16 bytes at a time
// A single workgroup; each thread scans a strided slice, then a tree reduction. WG threads
// (a power of two ≤ 256): 256 on GPUs, 4 on CPU adapters (see rmsnorm.wgsl). One workgroup
// streaming a whole vocabulary (800 KB for Phi-4-mini's) is bound by memory latency, not
// bandwidth: each thread therefore issues four 16-byte reads before it compares any of them,
// 16 values in flight per thread instead of one.

struct ArgmaxParams {
    n: u32,
}

@group(0) @binding(0) var<uniform> params: ArgmaxParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<u32>;
@group(0) @binding(3) var<storage, read> logits4: array<vec4<f32>>;

override WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;
var<workgroup> best_value: array<f32, 256>;
var<workgroup> best_index: array<u32, 256>;

/// The best so far of a thread's values, seen in increasing index order: a later value
/// replaces it only when strictly larger, so the first of equal maxima stays.
struct Best {
    value: f32,
    index: u32,
}

fn take(best: Best, v: f32, i: u32) -> Best {
    if (v > best.value || best.index == NONE) {
        return Best(v, i);
    }
    return best;
}

/// Values 4 i4 .. 4 i4 + 4.
fn take4(best: Best, v: vec4<f32>, i4: u32) -> Best {
    return take(take(take(take(best, v.x, 4u * i4), v.y, 4u * i4 + 1u), v.z, 4u * i4 + 2u), v.w, 4u * i4 + 3u);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
    var best = Best(-3.0e38, NONE);
    let n4 = params.n / 4u;
    let last = n4 - 1u;
    for (var i = lid; i < n4; i += 4u * WG) {
        let a = logits4[i];
        let b = logits4[min(i + WG, last)];
        let c = logits4[min(i + 2u * WG, last)];
        let d = logits4[min(i + 3u * WG, last)];
        best = take4(best, a, i);
        if (i + WG < n4) {
            best = take4(best, b, i + WG);
        }
        if (i + 2u * WG < n4) {
            best = take4(best, c, i + 2u * WG);
        }
        if (i + 3u * WG < n4) {
            best = take4(best, d, i + 3u * WG);
        }
    }
    // The last n % 4 values, after every vec4 in index order.
    if (4u * n4 + lid < params.n) {
        best = take(best, logits[4u * n4 + lid], 4u * n4 + lid);
    }
    best_value[lid] = best.value;
    best_index[lid] = best.index;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let v = best_value[lid + s];
            let j = best_index[lid + s];
            let mine = best_index[lid];
            if (j != NONE && (mine == NONE || v > best_value[lid] || (v == best_value[lid] && j < mine))) {
                best_value[lid] = v;
                best_index[lid] = j;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        result[0] = best_index[0];
    }
}
