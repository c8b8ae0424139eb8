// Q5_0 block dot (layout in weights/q5_0.wgsl): value = d * (q - 16), the 5th bit from qh.
const BLOCK_VALUES: u32 = 32u;

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let block = row * (params.k / 32u) + b;
    let base = block * 5u;
    let qh = weights[base];
    var acc = 0.0;
    for (var i = 0u; i < 4u; i++) {
        let w = weights[base + 1u + i];
        let lo = nibbles_lo(w) + 16.0 * bits4(qh >> (4u * i)) - 16.0;
        let hi = nibbles_hi(w) + 16.0 * bits4(qh >> (16u + 4u * i)) - 16.0;
        acc += dot(lo, x4(xi + i)) + dot(hi, x4(xi + 4u + i));
    }
    return plane_scale(block) * acc;
}
