// Q4_K block dot (layout in weights/q4_k.wgsl): a super-block of 256 values is nine vec4:
// (d | dmin, three words of packed scales), then four chunks of two vec4 (32 qs bytes);
// chunk c holds sub-block 2c in its low nibbles and 2c + 1 in its high ones.
// value = d * sc * q - dmin * mn, so the dot is d Σ sc (q · x) - dmin Σ mn Σx over the eight
// sub-blocks, the Σx shared by the thread's rows.
const BLOCK_VALUES: u32 = 256u;

/// The super-block's activations by sub-block, and the sub-blocks' Σx (0..4, 4..8).
struct XBlock {
    v: array<array<vec4<f32>, 8>, 8>,
    sum_lo: vec4<f32>,
    sum_hi: vec4<f32>,
}

fn x_block(xi: u32) -> XBlock {
    let v = array<array<vec4<f32>, 8>, 8>(x32(xi), x32(xi + 8u), x32(xi + 16u), x32(xi + 24u), x32(xi + 32u), x32(xi + 40u), x32(xi + 48u), x32(xi + 56u));
    return XBlock(v, vec4<f32>(sum32(v[0]), sum32(v[1]), sum32(v[2]), sum32(v[3])), vec4<f32>(sum32(v[4]), sum32(v[5]), sum32(v[6]), sum32(v[7])));
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
    return dm.x * (dot(s.sc_lo, qx_lo) + dot(s.sc_hi, qx_hi)) - dm.y * (dot(s.mn_lo, xb.sum_lo) + dot(s.mn_hi, xb.sum_hi));
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    return vec4<f32>(q4k_row(rows.x, b, xb), q4k_row(rows.y, b, xb), q4k_row(rows.z, b, xb), q4k_row(rows.w, b, xb));
}
