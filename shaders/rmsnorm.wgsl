// RMSNorm: out[r, :] (+)= x[x_row + r, :] / sqrt(mean(x[x_row + r, :]^2) + eps) * weight, added
// to out with `accumulate` (Gemma's norms after attention and the feed-forward, before the
// residual add).
//
// Bindings:
//   0 params   uniform  NormParams (below)
//   1 x        storage  f32 [rows, n]
//   2 weight   storage  f32 [n]
//   3 out      storage  f32 [n_rows, n]
// One workgroup per output row; dispatch (n_rows). WG threads (a power of two ≤ 64): 64 on
// GPUs, 4 on CPU adapters, where SwiftShader switches between each 4 lanes at every barrier.

struct NormParams {
    n: u32,
    x_row: u32,
    eps: f32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> params: NormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;
var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let src = (params.x_row + wid.x) * params.n;
    let dst = wid.x * params.n;
    var sum = 0.0;
    for (var i = lid; i < params.n; i += WG) {
        let v = x[src + i];
        sum += v * v;
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let scale = inverseSqrt(partial[0] / f32(params.n) + params.eps);
    for (var i = lid; i < params.n; i += WG) {
        let v = x[src + i] * scale * weight[i];
        out[dst + i] = select(v, out[dst + i] + v, params.accumulate == 1u);
    }
}
