// Q4_0 block dot (layout in weights/q4_0.wgsl): value = d * (q - 8), so a block's dot is
// d * (q · x - 8 Σx), Σx shared by the thread's rows.
const BLOCK_VALUES: u32 = 32u;
alias XBlock = XNibbles;

fn x_block(xi: u32) -> XBlock {
    return x_nibbles(xi);
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    let blocks = rows * (params.k / 32u) + b;
    let qx = vec4<f32>(q4_32_dot(4u * blocks.x, xb), q4_32_dot(4u * blocks.y, xb), q4_32_dot(4u * blocks.z, xb), q4_32_dot(4u * blocks.w, xb));
    let d = vec4<f32>(plane_scale(blocks.x), plane_scale(blocks.y), plane_scale(blocks.z), plane_scale(blocks.w));
    return d * (qx + (xb.fix - 8.0 * xb.sum));
}
