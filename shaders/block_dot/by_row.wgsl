// Four rows for formats whose block_dot takes one row at a time (the rarer ones: Q5_*, F32,
// BF16): each row reads the activations again. The common formats define block_dot4
// themselves and read each activation once for all four rows.
fn block_dot4(rows: vec4<u32>, b: u32, xi: u32) -> vec4<f32> {
    return vec4<f32>(block_dot(rows.x, b, xi), block_dot(rows.y, b, xi), block_dot(rows.z, b, xi), block_dot(rows.w, b, xi));
}
