// RMSNorm of every query and key head, in place, before RoPE (Qwen 3):
// head[:] = head[:] / sqrt(mean(head[:]^2) + eps) * gain, with the query gain for query heads
// and the key gain for key heads. Each token's qkv row holds n_head query heads and then the
// key heads, head_dim values each, so head h of a row starts at h * head_dim.
//
// Bindings:
//   0 params  uniform  HeadNormParams (below)
//   1 qkv     storage  f32 [n_tokens, stride], read and written
//   2 q_gain  storage  f32 [head_dim]
//   3 k_gain  storage  f32 [head_dim]
// One workgroup per head and token; dispatch (n_head + n_head_kv, n_tokens). WG threads (a
// power of two ≤ 64), as rmsnorm.wgsl.

struct HeadNormParams {
    head_dim: u32,
    stride: u32,
    n_head: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> params: HeadNormParams;
@group(0) @binding(1) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> q_gain: array<f32>;
@group(0) @binding(3) var<storage, read> k_gain: array<f32>;

override WG: u32 = 64u;
var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = wid.y * params.stride + wid.x * params.head_dim;
    var sum = 0.0;
    for (var i = lid; i < params.head_dim; i += WG) {
        let v = qkv[base + i];
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
    let scale = inverseSqrt(partial[0] / f32(params.head_dim) + params.eps);
    let is_query = wid.x < params.n_head;
    for (var i = lid; i < params.head_dim; i += WG) {
        let gain = select(k_gain[i], q_gain[i], is_query);
        qkv[base + i] = qkv[base + i] * scale * gain;
    }
}
