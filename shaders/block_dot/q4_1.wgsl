// Q4_1 block dot (layout in weights/q4_1.wgsl): value = d * q + m. Unrolled by hand:
// SwiftShader runs WGSL loops as written, and the loop costs as much as the work.
const BLOCK_VALUES: u32 = 32u;

fn q4_1_word(w: u32, dm: vec2<f32>, lo: vec4<f32>, hi: vec4<f32>) -> f32 {
    return dot(nibbles_lo(w) * dm.x + dm.y, lo) + dot(nibbles_hi(w) * dm.x + dm.y, hi);
}

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let base = (row * (params.k / 32u) + b) * 5u;
    let dm = unpack2x16float(weights[base]);
    return q4_1_word(weights[base + 1u], dm, x4(xi), x4(xi + 4u)) + q4_1_word(weights[base + 2u], dm, x4(xi + 1u), x4(xi + 5u))
        + q4_1_word(weights[base + 3u], dm, x4(xi + 2u), x4(xi + 6u)) + q4_1_word(weights[base + 4u], dm, x4(xi + 3u), x4(xi + 7u));
}
