// Sampling penalties and logit bias, applied to the logits in place before candidates are
// chosen (llama.cpp's definitions):
//   repetition: l > 0 ? l / repeat : l * repeat            (for tokens seen in the window)
//   frequency and presence: l -= count * frequency + presence
//   bias: l += bias
//
// Bindings:
//   0 params   uniform  PenaltyParams (below)
//   1 logits   storage  f32 [n_vocab], modified in place
//   2 entries  storage  [n_entries] of (token u32, count u32, bias f32 bits, unused); each token once
// One invocation per entry.

struct PenaltyParams {
    n_entries: u32,
    repeat: f32,
    frequency: f32,
    presence: f32,
}

@group(0) @binding(0) var<uniform> params: PenaltyParams;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> entries: array<vec4<u32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= params.n_entries) {
        return;
    }
    let e = entries[gid.x];
    var l = logits[e.x];
    if (e.y > 0u) {
        l = select(l * params.repeat, l / params.repeat, l > 0.0);
        l -= f32(e.y) * params.frequency + params.presence;
    }
    logits[e.x] = l + bitcast<f32>(e.z);
}
