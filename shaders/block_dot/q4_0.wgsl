// Q4_0 block dot (layout in weights/q4_0.wgsl): value = d * (q - 8), so a block's dot is
// d * (q · x - 8 Σx), Σx shared by the thread's rows.
const BLOCK_VALUES: u32 = 32u;
alias XBlock = X32;

fn x_block(xi: u32) -> XBlock {
    return x32_block(xi);
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    let x = xb.v;
    let blocks = rows * (params.k / 32u) + b;
    let qx = vec4<f32>(q4_32_dot(4u * blocks.x, x), q4_32_dot(4u * blocks.y, x), q4_32_dot(4u * blocks.z, x), q4_32_dot(4u * blocks.w, x));
    let d = vec4<f32>(plane_scale(blocks.x), plane_scale(blocks.y), plane_scale(blocks.z), plane_scale(blocks.w));
    return d * (qx - 8.0 * xb.sum);
}
