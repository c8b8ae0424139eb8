// Greedy sampling on the GPU: result[0] = the index of the largest of logits[0..n) (the
// lowest index among equal maxima, as llama.cpp's greedy sampler picks), so decoding reads
// back 4 bytes instead of the vocabulary.
//
// Bindings:
//   0 params  uniform  ArgmaxParams (below)
//   1 logits  storage  f32 [n]
//   2 result  storage  u32 [1]
// A single workgroup; each thread scans a strided slice, then a tree reduction. WG threads
// (a power of two ≤ 256): 256 on GPUs, 4 on CPU adapters (see rmsnorm.wgsl).

struct ArgmaxParams {
    n: u32,
}

@group(0) @binding(0) var<uniform> params: ArgmaxParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<u32>;

override WG: u32 = 256u;
var<workgroup> best_value: array<f32, 256>;
var<workgroup> best_index: array<u32, 256>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
    var value = -3.0e38;
    var index = 0xffffffffu;
    for (var i = lid; i < params.n; i += WG) {
        let v = logits[i];
        if (v > value || index == 0xffffffffu) {
            value = v;
            index = i;
        }
    }
    best_value[lid] = value;
    best_index[lid] = index;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let v = best_value[lid + s];
            let j = best_index[lid + s];
            let mine = best_index[lid];
            if (j != 0xffffffffu && (mine == 0xffffffffu || v > best_value[lid] || (v == best_value[lid] && j < mine))) {
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
