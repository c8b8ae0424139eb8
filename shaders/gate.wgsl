// Gated activation of the feed-forward block: act[t, i] = gate_activation(gate[t, i]) * up[t, i]
// (SiLU, or GELU with `gelu`: gate_activation.wgsl, prepended), reading the fused projection
// gu[t, :] = [gate (n_ff values) | up (n_ff values)].
//
// Bindings:
//   0 params  uniform  GateParams (below)
//   1 gu      storage  f32 [n_tokens, 2 n_ff]
//   2 act     storage  f32 [n_tokens, n_ff]
// One invocation per output value; dispatch (ceil(n_ff / 64), n_tokens).

struct GateParams {
    n_ff: u32,
    n_tokens: u32,
    gelu: u32,
}

@group(0) @binding(0) var<uniform> params: GateParams;
@group(0) @binding(1) var<storage, read> gu: array<f32>;
@group(0) @binding(2) var<storage, read_write> act: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let t = gid.y;
    if (i >= params.n_ff || t >= params.n_tokens) {
        return;
    }
    let g = gu[t * 2u * params.n_ff + i];
    let u = gu[t * 2u * params.n_ff + params.n_ff + i];
    act[t * params.n_ff + i] = gate_activation(g, params.gelu) * u;
}
