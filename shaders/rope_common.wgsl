// The rotary embedding (parameters: rope_params.wgsl) shared by rope_kv.wgsl and attention_gpu.wgsl (which rotates a
// decoded token's query and key itself). The including kernel declares `qkv` (f32, the
// projections' output) and `freq` (f32 [n_rot / 2] frequency divisors: LongRoPE factors,
// ones if none).
// Pair i of the first n_rot dimensions is (i, i + n_rot/2) in NeoX style, (2i, 2i+1) in the
// original style; angle = pos * freq_scale * base^(-2i/n_rot) / freq[i]; cos and sin are
// scaled by attn_factor (LongRoPE). Dimensions past n_rot pass through unchanged.

/// (cos, sin) of pair i's angle at `pos`, scaled by attn_factor.
fn rope_rotation(rope: Rope, i: u32, pos: u32) -> vec2<f32> {
    let inv_freq = exp2(-rope.log2_base * f32(2u * i) / f32(rope.n_rot));
    let theta = f32(pos) * rope.freq_scale * inv_freq / freq[i];
    return vec2<f32>(cos(theta), sin(theta)) * rope.attn_factor;
}

/// Dimension d of the head at qkv[src], rotated to `pos`; read-only, so that each thread can
/// produce whole words of four values without waiting for the threads rotating the others.
fn rope_rotated(rope: Rope, src: u32, d: u32, pos: u32) -> f32 {
    let x = qkv[src + d];
    if (d >= rope.n_rot) {
        return x;
    }
    let half = rope.n_rot / 2u;
    var i = d / 2u;
    var partner = d ^ 1u;
    var first = (d & 1u) == 0u;
    if (rope.neox == 1u) {
        i = d % half;
        first = d < half;
        partner = select(d - half, d + half, first);
    }
    let cs = rope_rotation(rope, i, pos);
    let y = qkv[src + partner];
    // Pair (x0, x1) becomes (x0 c - x1 s, x0 s + x1 c).
    return select(y * cs.y + x * cs.x, x * cs.x - y * cs.y, first);
}

/// Dimensions d..d+4 of the head at qkv[src], rotated to `pos`.
fn rope_rotated4(rope: Rope, src: u32, d: u32, pos: u32) -> vec4<f32> {
    return vec4<f32>(rope_rotated(rope, src, d, pos), rope_rotated(rope, src, d + 1u, pos), rope_rotated(rope, src, d + 2u, pos), rope_rotated(rope, src, d + 3u, pos));
}
