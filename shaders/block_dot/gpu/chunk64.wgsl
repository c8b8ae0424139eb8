// The 64-value chunks of Q4_K and Q5_K super-blocks, the blocks of their GPU dot products
// (gpu/q4_k.wgsl, gpu/q5_k.wgsl): chunk c holds sub-block 2c in its qs bytes' low nibbles and
// 2c + 1 in their high nibbles, read in place (block_dot/common.wgsl). A chunk's activations
// are 64 floats, which stay in registers; a whole super-block's 256 (the CPU kernel's block)
// would not.
const BLOCK_VALUES: u32 = 64u;

/// The chunk's activations scaled for low nibbles (v[0..8], sub-block 2c) and high ones
/// (v[8..16], sub-block 2c + 1), each half's Σx, and the flipped top nibbles' correction.
struct XBlock {
    v: array<vec4<f32>, 16>,
    sum: vec2<f32>,
    fix: f32,
}

fn x_block(xi: u32) -> XBlock {
    let a = x32(xi);
    let b = x32(xi + 8u);
    let lo = BYTE_SCALES;
    let hi = BYTE_SCALES / 16.0;
    let v = array<vec4<f32>, 16>(
        a[0] * lo, a[1] * lo, a[2] * lo, a[3] * lo, a[4] * lo, a[5] * lo, a[6] * lo, a[7] * lo,
        b[0] * hi, b[1] * hi, b[2] * hi, b[3] * hi, b[4] * hi, b[5] * hi, b[6] * hi, b[7] * hi,
    );
    let fix = 8.0 * (b[0].w + b[1].w + b[2].w + b[3].w + b[4].w + b[5].w + b[6].w + b[7].w);
    return XBlock(v, vec2<f32>(sum32(a), sum32(b)), fix);
}

/// (scale, min) of sub-blocks 2c and 2c + 1 as (sc0, sc1, mn0, mn1), from a super-block's
/// head (d | dmin, then the three words of packed scales).
fn chunk_scales(head: vec4<u32>, c: u32) -> vec4<f32> {
    let s = k4_scales_mins(head.y, head.z, head.w);
    let sc = select(s.sc_hi, s.sc_lo, c < 2u);
    let mn = select(s.mn_hi, s.mn_lo, c < 2u);
    let i = 2u * (c % 2u);
    return vec4<f32>(sc[i], sc[i + 1u], mn[i], mn[i + 1u]);
}
