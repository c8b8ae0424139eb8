// Adds a bias to each token's row of a product, in place: y[t, i] += bias[i] for i < n.
// Qwen 2's query, key and value biases, concatenated as the qkv columns are.
//
// Bindings:
//   0 params  uniform  BiasParams (below)
//   1 y       storage  f32 [n_tokens, stride], read and written
//   2 bias    storage  f32 [n]
// Dispatch (ceil(n / 64), n_tokens).

struct BiasParams {
    n: u32,
    stride: u32,
}

@group(0) @binding(0) var<uniform> params: BiasParams;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i < params.n) {
        y[gid.y * params.stride + i] += bias[i];
    }
}
