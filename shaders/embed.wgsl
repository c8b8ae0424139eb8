// Embedding gather: out[t, :] = scale * W[tokens[t] - row_start, :] for the tokens whose row lies in
// this chunk of the embedding matrix (a large vocabulary is split over several buffers).
//
// Bindings:
//   0 params   uniform  EmbedParams (below)
//   1 weights  storage  embedding rows [row_start, row_start + n_rows) in the GPU layout
//   2 tokens   storage  u32 token ids [n_tokens]
//   3 out      storage  f32 [n_tokens, k] written as vec4
// One invocation per (8-value group, token); dispatch (ceil(k / 8 / 64), n_tokens).

struct EmbedParams {
    k: u32,
    scale_offset: u32,
    n_rows: u32,
    n_tokens: u32,
    row_start: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> params: EmbedParams;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let g = gid.x * 8u;
    let t = gid.y;
    if (g >= params.k || t >= params.n_tokens) {
        return;
    }
    let token = tokens[t];
    if (token < params.row_start || token - params.row_start >= params.n_rows) {
        return;
    }
    let w = load_w8(token - params.row_start, g);
    let o = (t * params.k + g) / 4u;
    out[o] = w.lo * params.scale;
    out[o + 1u] = w.hi * params.scale;
}
