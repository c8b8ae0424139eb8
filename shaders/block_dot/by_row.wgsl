// Four rows for formats whose block_dot takes one row at a time (the rarer ones: Q5_*, F32,
// BF16): each row reads the activations itself. The common formats define XBlock and
// block_dot4 themselves and read each activation once for all of a thread's rows.
struct XBlock {
    xi: u32,
}

fn x_block(xi: u32) -> XBlock {
    return XBlock(xi);
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    return vec4<f32>(block_dot(rows.x, b, xb.xi), block_dot(rows.y, b, xb.xi), block_dot(rows.z, b, xb.xi), block_dot(rows.w, b, xb.xi));
}
