// Q4_1 block dot (layout in weights/q4_1.wgsl): value = d * q + m, so a block's dot is
// d * (q · x) + m * Σx, Σx shared by the thread's rows.
const BLOCK_VALUES: u32 = 32u;
alias XBlock = XNibbles;

fn x_block(xi: u32) -> XBlock {
    return x_nibbles(xi);
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    let base = (rows * (params.k / 32u) + b) * 5u;
    let qx = vec4<f32>(q4_32_dot(base.x + 1u, xb), q4_32_dot(base.y + 1u, xb), q4_32_dot(base.z + 1u, xb), q4_32_dot(base.w + 1u, xb));
    let dm0 = unpack2x16float(weights[base.x]);
    let dm1 = unpack2x16float(weights[base.y]);
    let dm2 = unpack2x16float(weights[base.z]);
    let dm3 = unpack2x16float(weights[base.w]);
    return vec4<f32>(dm0.x, dm1.x, dm2.x, dm3.x) * (qx + xb.fix) + vec4<f32>(dm0.y, dm1.y, dm2.y, dm3.y) * xb.sum;
}
