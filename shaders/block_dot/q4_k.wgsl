// Q4_K block dot (layout in weights/q4_k.wgsl): a super-block of 256 values is nine vec4:
// (d | dmin, three words of packed scales), then four chunks of two vec4 (32 qs bytes);
// chunk c holds sub-block 2c in its low nibbles and 2c + 1 in its high ones.
// value = (d * sc) * q - dmin * mn. Unrolled by hand: SwiftShader runs loops as written.
const BLOCK_VALUES: u32 = 256u;

// One word of a chunk: 4 values of each sub-block (`scale`/`offset`: low x, high y).
fn q4k_word(w: u32, scale: vec2<f32>, offset: vec2<f32>, lo: vec4<f32>, hi: vec4<f32>) -> f32 {
    return dot(nibbles_lo(w) * scale.x - offset.x, lo) + dot(nibbles_hi(w) * scale.y - offset.y, hi);
}

fn q4k_chunk(a: vec4<u32>, b: vec4<u32>, xi: u32, scale: vec2<f32>, offset: vec2<f32>) -> f32 {
    return q4k_word(a.x, scale, offset, x4(xi), x4(xi + 8u)) + q4k_word(a.y, scale, offset, x4(xi + 1u), x4(xi + 9u))
        + q4k_word(a.z, scale, offset, x4(xi + 2u), x4(xi + 10u)) + q4k_word(a.w, scale, offset, x4(xi + 3u), x4(xi + 11u))
        + q4k_word(b.x, scale, offset, x4(xi + 4u), x4(xi + 12u)) + q4k_word(b.y, scale, offset, x4(xi + 5u), x4(xi + 13u))
        + q4k_word(b.z, scale, offset, x4(xi + 6u), x4(xi + 14u)) + q4k_word(b.w, scale, offset, x4(xi + 7u), x4(xi + 15u));
}

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let base = (row * (params.k / 256u) + b) * 9u;
    let head = weights4[base];
    let dm = unpack2x16float(head.x);
    let s = k4_scales_mins(head.y, head.z, head.w);
    let sc_lo = s.sc_lo * dm.x;
    let sc_hi = s.sc_hi * dm.x;
    let mn_lo = s.mn_lo * dm.y;
    let mn_hi = s.mn_hi * dm.y;
    return q4k_chunk(weights4[base + 1u], weights4[base + 2u], xi, sc_lo.xy, mn_lo.xy)
        + q4k_chunk(weights4[base + 3u], weights4[base + 4u], xi + 16u, sc_lo.zw, mn_lo.zw)
        + q4k_chunk(weights4[base + 5u], weights4[base + 6u], xi + 32u, sc_hi.xy, mn_hi.xy)
        + q4k_chunk(weights4[base + 7u], weights4[base + 8u], xi + 48u, sc_hi.zw, mn_hi.zw);
}
