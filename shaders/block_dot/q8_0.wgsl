// Q8_0 block dot (layout in weights/q8_0.wgsl): value = d * q. The body is two vec4;
// unrolled by hand (SwiftShader runs loops as written).
const BLOCK_VALUES: u32 = 32u;

fn q8_0_vec4(q: vec4<u32>, xi: u32) -> f32 {
    return dot(bytes_i(q.x), x4(xi)) + dot(bytes_i(q.y), x4(xi + 1u)) + dot(bytes_i(q.z), x4(xi + 2u)) + dot(bytes_i(q.w), x4(xi + 3u));
}

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let block = row * (params.k / 32u) + b;
    return plane_scale(block) * (q8_0_vec4(weights4[2u * block], xi) + q8_0_vec4(weights4[2u * block + 1u], xi + 4u));
}
