// Q8_0 block dot (layout in weights/q8_0.wgsl): value = d * q.
const BLOCK_VALUES: u32 = 32u;

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let block = row * (params.k / 32u) + b;
    let qs = block * 8u;
    var acc = 0.0;
    for (var i = 0u; i < 8u; i++) {
        acc += dot(bytes_i(weights[qs + i]), x4(xi + i));
    }
    return plane_scale(block) * acc;
}
