// Q4_K block dot (layout in weights/q4_k.wgsl): a super-block of 256 values is four chunks
// of 32 qs bytes; chunk c holds sub-block 2c in its low nibbles and 2c + 1 in its high ones.
// value = (d * sc) * q - dmin * mn
const BLOCK_VALUES: u32 = 256u;

// One chunk: `scale`/`offset` of its low (x) and high (y) sub-block.
fn q4k_chunk(qs: u32, xi: u32, scale: vec2<f32>, offset: vec2<f32>) -> f32 {
    var acc = 0.0;
    for (var i = 0u; i < 8u; i++) {
        let w = weights[qs + i];
        acc += dot(nibbles_lo(w) * scale.x - offset.x, x4(xi + i)) + dot(nibbles_hi(w) * scale.y - offset.y, x4(xi + 8u + i));
    }
    return acc;
}

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let base = (row * (params.k / 256u) + b) * 36u;
    let dm = unpack2x16float(weights[base]);
    let s = k4_scales_mins(weights[base + 1u], weights[base + 2u], weights[base + 3u]);
    let sc_lo = s.sc_lo * dm.x;
    let sc_hi = s.sc_hi * dm.x;
    let mn_lo = s.mn_lo * dm.y;
    let mn_hi = s.mn_hi * dm.y;
    return q4k_chunk(base + 4u, xi, sc_lo.xy, mn_lo.xy) + q4k_chunk(base + 12u, xi + 16u, sc_lo.zw, mn_lo.zw)
        + q4k_chunk(base + 20u, xi + 32u, sc_hi.xy, mn_hi.xy) + q4k_chunk(base + 28u, xi + 48u, sc_hi.zw, mn_hi.zw);
}
