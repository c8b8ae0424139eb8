// Merges split-decoding partials (attention.wgsl with n_splits > 1) into the attention output
// of the single query: with m_s, l_s, acc_s the running maximum, sum and unnormalized output
// of split s, out = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s, M = max_s m_s.
//
// Bindings:
//   0 params    uniform  CombineParams (below)
//   1 partials  storage  f32 [n_head, n_splits, head_dim + 2]: acc[head_dim], m, l
//   2 out       storage  f32 [n_head * head_dim]
// One workgroup per head; threads over the head's dimensions.

struct CombineParams {
    head_dim: u32,
    n_splits: u32,
}

@group(0) @binding(0) var<uniform> params: CombineParams;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let hd = params.head_dim;
    let stride = hd + 2u;
    let base = h * params.n_splits * stride;
    var m = -3.0e38;
    for (var s = 0u; s < params.n_splits; s++) {
        m = max(m, partials[base + s * stride + hd]);
    }
    var sum = 0.0;
    for (var s = 0u; s < params.n_splits; s++) {
        sum += exp(partials[base + s * stride + hd] - m) * partials[base + s * stride + hd + 1u];
    }
    for (var d = lid; d < hd; d += 64u) {
        var acc = 0.0;
        for (var s = 0u; s < params.n_splits; s++) {
            acc += exp(partials[base + s * stride + hd] - m) * partials[base + s * stride + d];
        }
        out[h * hd + d] = acc / sum;
    }
}
