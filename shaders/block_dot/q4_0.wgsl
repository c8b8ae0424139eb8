// Q4_0 block dot (layout in weights/q4_0.wgsl): value = d * (q - 8). Unrolled by hand:
// SwiftShader runs loops as written, and the loop costs as much as the work.
const BLOCK_VALUES: u32 = 32u;

fn q4_0_word(w: u32, lo: vec4<f32>, hi: vec4<f32>) -> f32 {
    return dot(nibbles_lo(w) - 8.0, lo) + dot(nibbles_hi(w) - 8.0, hi);
}

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let block = row * (params.k / 32u) + b;
    let q = 4u * block;
    let acc = q4_0_word(weights[q], x4(xi), x4(xi + 4u)) + q4_0_word(weights[q + 1u], x4(xi + 1u), x4(xi + 5u))
        + q4_0_word(weights[q + 2u], x4(xi + 2u), x4(xi + 6u)) + q4_0_word(weights[q + 3u], x4(xi + 3u), x4(xi + 7u));
    return plane_scale(block) * acc;
}
