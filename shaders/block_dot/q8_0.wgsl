// Q8_0 block dot (layout in weights/q8_0.wgsl): value = d * q; the body is two vec4.
const BLOCK_VALUES: u32 = 32u;
alias XBlock = X32;

fn x_block(xi: u32) -> XBlock {
    return x32_block(xi);
}

fn q8_0_dot(block: u32, x: array<vec4<f32>, 8>) -> f32 {
    let a = weights4[2u * block];
    let b = weights4[2u * block + 1u];
    return plane_scale(block) * (dot(bytes_i(a.x), x[0]) + dot(bytes_i(a.y), x[1]) + dot(bytes_i(a.z), x[2]) + dot(bytes_i(a.w), x[3])
        + dot(bytes_i(b.x), x[4]) + dot(bytes_i(b.y), x[5]) + dot(bytes_i(b.z), x[6]) + dot(bytes_i(b.w), x[7]));
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    let x = xb.v;
    let blocks = rows * (params.k / 32u) + b;
    return vec4<f32>(q8_0_dot(blocks.x, x), q8_0_dot(blocks.y, x), q8_0_dot(blocks.z, x), q8_0_dot(blocks.w, x));
}
