// Q4_1 block dot (layout in weights/q4_1.wgsl): value = d * q + m.
const BLOCK_VALUES: u32 = 32u;

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let base = (row * (params.k / 32u) + b) * 5u;
    let dm = unpack2x16float(weights[base]);
    var acc = 0.0;
    for (var i = 0u; i < 4u; i++) {
        let w = weights[base + 1u + i];
        acc += dot(nibbles_lo(w) * dm.x + dm.y, x4(xi + i)) + dot(nibbles_hi(w) * dm.x + dm.y, x4(xi + 4u + i));
    }
    return acc;
}
