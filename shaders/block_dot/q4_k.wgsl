// Q4_K block dot (layout in weights/q4_k.wgsl): a super-block of 256 values is nine vec4:
// (d | dmin, three words of packed scales), then four chunks of two vec4 (32 qs bytes);
// chunk c holds sub-block 2c in its low nibbles and 2c + 1 in its high ones.
// value = d * sc * q - dmin * mn, so the dot is d Σ sc (q · x) - dmin Σ mn Σx over the eight
// sub-blocks, the Σx shared by the thread's rows.
const BLOCK_VALUES: u32 = 256u;

/// The super-block's activations by sub-block, scaled for low nibbles (even sub-blocks) or
/// high ones (odd; matvec_cpu.wgsl), the sub-blocks' Σx (0..4, 4..8), and the corrections of
/// the flipped top nibbles, which belong to the odd sub-blocks (0..4, 4..8).
struct XBlock {
    v: array<array<vec4<f32>, 8>, 8>,
    sum_lo: vec4<f32>,
    sum_hi: vec4<f32>,
    fix_lo: vec4<f32>,
    fix_hi: vec4<f32>,
}

fn scaled(x: array<vec4<f32>, 8>, s: vec4<f32>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(x[0] * s, x[1] * s, x[2] * s, x[3] * s, x[4] * s, x[5] * s, x[6] * s, x[7] * s);
}

/// 8 × the activations of a sub-block's top nibbles (the w of each vec4).
fn top_fix(x: array<vec4<f32>, 8>) -> f32 {
    return 8.0 * (x[0].w + x[1].w + x[2].w + x[3].w + x[4].w + x[5].w + x[6].w + x[7].w);
}

fn x_block(xi: u32) -> XBlock {
    let x = array<array<vec4<f32>, 8>, 8>(x32(xi), x32(xi + 8u), x32(xi + 16u), x32(xi + 24u), x32(xi + 32u), x32(xi + 40u), x32(xi + 48u), x32(xi + 56u));
    let lo = BYTE_SCALES;
    let hi = BYTE_SCALES / 16.0;
    let v = array<array<vec4<f32>, 8>, 8>(scaled(x[0], lo), scaled(x[1], hi), scaled(x[2], lo), scaled(x[3], hi), scaled(x[4], lo), scaled(x[5], hi), scaled(x[6], lo), scaled(x[7], hi));
    return XBlock(
        v,
        vec4<f32>(sum32(x[0]), sum32(x[1]), sum32(x[2]), sum32(x[3])),
        vec4<f32>(sum32(x[4]), sum32(x[5]), sum32(x[6]), sum32(x[7])),
        vec4<f32>(0.0, top_fix(x[1]), 0.0, top_fix(x[3])),
        vec4<f32>(0.0, top_fix(x[5]), 0.0, top_fix(x[7])),
    );
}

// q · x of one chunk's two sub-blocks: low nibbles with `lo`, high ones with `hi`.
fn q4k_chunk(a: vec4<u32>, b: vec4<u32>, lo: array<vec4<f32>, 8>, hi: array<vec4<f32>, 8>) -> vec2<f32> {
    return nibble_dots(a.x, lo[0], hi[0]) + nibble_dots(a.y, lo[1], hi[1]) + nibble_dots(a.z, lo[2], hi[2]) + nibble_dots(a.w, lo[3], hi[3])
        + nibble_dots(b.x, lo[4], hi[4]) + nibble_dots(b.y, lo[5], hi[5]) + nibble_dots(b.z, lo[6], hi[6]) + nibble_dots(b.w, lo[7], hi[7]);
}

fn q4k_row(row: u32, b: u32, xb: XBlock) -> f32 {
    let x = xb.v;
    let base = (row * (params.k / 256u) + b) * 9u;
    let head = weights4[base];
    let dm = unpack2x16float(head.x);
    let s = k4_scales_mins(head.y, head.z, head.w);
    let qx_lo = vec4<f32>(q4k_chunk(weights4[base + 1u], weights4[base + 2u], x[0], x[1]), q4k_chunk(weights4[base + 3u], weights4[base + 4u], x[2], x[3]));
    let qx_hi = vec4<f32>(q4k_chunk(weights4[base + 5u], weights4[base + 6u], x[4], x[5]), q4k_chunk(weights4[base + 7u], weights4[base + 8u], x[6], x[7]));
    return dm.x * (dot(s.sc_lo, qx_lo + xb.fix_lo) + dot(s.sc_hi, qx_hi + xb.fix_hi)) - dm.y * (dot(s.mn_lo, xb.sum_lo) + dot(s.mn_hi, xb.sum_hi));
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    return vec4<f32>(q4k_row(rows.x, b, xb), q4k_row(rows.y, b, xb), q4k_row(rows.z, b, xb), q4k_row(rows.w, b, xb));
}
