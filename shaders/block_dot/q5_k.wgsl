// Q5_K block dot (layout in weights/q5_k.wgsl): as Q4_K, plus the 5th bit of value l of
// chunk c's sub-block 2c + h at bit 2c + h of qh byte l.
// value = (d * sc) * q - dmin * mn
const BLOCK_VALUES: u32 = 256u;

fn q5k_chunk(qs: u32, qh: u32, c: u32, xi: u32, scale: vec2<f32>, offset: vec2<f32>) -> f32 {
    var acc = 0.0;
    for (var i = 0u; i < 8u; i++) {
        let w = weights[qs + i];
        let h = weights[qh + i] >> (2u * c);
        let lo = nibbles_lo(w) + 16.0 * bytes_u(h & 0x01010101u);
        let hi = nibbles_hi(w) + 16.0 * bytes_u((h >> 1u) & 0x01010101u);
        acc += dot(lo * scale.x - offset.x, x4(xi + i)) + dot(hi * scale.y - offset.y, x4(xi + 8u + i));
    }
    return acc;
}

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let base = (row * (params.k / 256u) + b) * 44u;
    let dm = unpack2x16float(weights[base]);
    let s = k4_scales_mins(weights[base + 1u], weights[base + 2u], weights[base + 3u]);
    let sc_lo = s.sc_lo * dm.x;
    let sc_hi = s.sc_hi * dm.x;
    let mn_lo = s.mn_lo * dm.y;
    let mn_hi = s.mn_hi * dm.y;
    let qh = base + 4u;
    return q5k_chunk(base + 12u, qh, 0u, xi, sc_lo.xy, mn_lo.xy) + q5k_chunk(base + 20u, qh, 1u, xi + 16u, sc_lo.zw, mn_lo.zw)
        + q5k_chunk(base + 28u, qh, 2u, xi + 32u, sc_hi.xy, mn_hi.xy) + q5k_chunk(base + 36u, qh, 3u, xi + 48u, sc_hi.zw, mn_hi.zw);
}
