// A constraint's token mask (structured output), applied to the logits in place after the
// penalties and before argmax or top-k: every token the mask does not allow gets the lowest
// logit there is, so that no choice can pick it.
//
// Bindings:
//   0 params   uniform  MaskParams (below)
//   1 logits   storage  f32 [n], modified in place
//   2 allowed  storage  u32 [ceil(n / 32)]: token t is allowed where bit t % 32 of word t / 32 is set
// One invocation per word of the mask, covering its 32 tokens.

struct MaskParams {
    n: u32,
}

@group(0) @binding(0) var<uniform> params: MaskParams;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> allowed: array<u32>;

// What a disallowed token's logit becomes: the lowest finite f32 (WGSL has no infinity literal),
// below any real logit, and exp() of it minus any real logit is 0.
const DISALLOWED: f32 = -3.4028234e38;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let word = gid.x;
    let first = word * 32u;
    if (first >= params.n) {
        return;
    }
    let bits = allowed[word];
    if (bits == 0xffffffffu) {
        return;
    }
    for (var i = 0u; i < min(32u, params.n - first); i++) {
        if (((bits >> i) & 1u) == 0u) {
            logits[first + i] = DISALLOWED;
        }
    }
}
