// Q4_0 block dot (layout in weights/q4_0.wgsl): value = d * (q - 8).
const BLOCK_VALUES: u32 = 32u;

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let block = row * (params.k / 32u) + b;
    let qs = block * 4u;
    var acc = 0.0;
    for (var i = 0u; i < 4u; i++) {
        let w = weights[qs + i];
        acc += dot(nibbles_lo(w) - 8.0, x4(xi + i)) + dot(nibbles_hi(w) - 8.0, x4(xi + 4u + i));
    }
    return plane_scale(block) * acc;
}
