// Q4_K block dot for GPUs (layout in weights/q4_k.wgsl): a block is a 64-value chunk c
// (gpu/chunk64.wgsl): two vec4 of qs from word 4 + 8c, read with the super-block's head vec4.
// value = d * sc * q - dmin * mn
fn q4k_chunk_dot(row: u32, b: u32, xb: XBlock) -> f32 {
    let base = (row * (params.k / 256u) + b / 4u) * 9u;
    let c = b % 4u;
    let head = weights4[base];
    let q0 = weights4[base + 1u + 2u * c];
    let q1 = weights4[base + 2u + 2u * c];
    let v = xb.v;
    let q = nibble_dots(q0.x, v[0], v[8]) + nibble_dots(q0.y, v[1], v[9]) + nibble_dots(q0.z, v[2], v[10]) + nibble_dots(q0.w, v[3], v[11])
        + nibble_dots(q1.x, v[4], v[12]) + nibble_dots(q1.y, v[5], v[13]) + nibble_dots(q1.z, v[6], v[14]) + nibble_dots(q1.w, v[7], v[15]);
    let dm = unpack2x16float(head.x);
    let s = chunk_scales(head, c);
    return dm.x * (s.x * q.x + s.y * (q.y + xb.fix)) - dm.y * (s.z * xb.sum.x + s.w * xb.sum.y);
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    return vec4<f32>(q4k_chunk_dot(rows.x, b, xb), q4k_chunk_dot(rows.y, b, xb), q4k_chunk_dot(rows.z, b, xb), q4k_chunk_dot(rows.w, b, xb));
}
