// Q5_1 block dot (layout in weights/q5_1.wgsl): value = d * q + m, the 5th bit from qh.
const BLOCK_VALUES: u32 = 32u;

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let base = (row * (params.k / 32u) + b) * 6u;
    let dm = unpack2x16float(weights[base]);
    let qh = weights[base + 1u];
    var acc = 0.0;
    for (var i = 0u; i < 4u; i++) {
        let w = weights[base + 2u + i];
        let lo = nibbles_lo(w) + 16.0 * bits4(qh >> (4u * i));
        let hi = nibbles_hi(w) + 16.0 * bits4(qh >> (16u + 4u * i));
        acc += dot(lo * dm.x + dm.y, x4(xi + i)) + dot(hi * dm.x + dm.y, x4(xi + 4u + i));
    }
    return acc;
}
