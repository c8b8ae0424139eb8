// Q5_K block dot for GPUs (layout in weights/q5_k.wgsl): as gpu/q4_k.wgsl, a block is a
// 64-value chunk c (its qs: two vec4 from word 12 + 8c), plus the 5th bits: bit 2c of qh byte
// l for value l of sub-block 2c, bit 2c + 1 for sub-block 2c + 1 (qh: two vec4 from word 4).
// value = d * sc * q - dmin * mn

/// The nibble dots of one qs word (nibble_dots) plus its values' 5th bits, in place in
/// qh >> 2c: bit 0 of each byte for the low sub-block (16 × against `lo`), bit 1 for the high
/// one (128 × against `hi`: the bit reads as 2 and `hi` carries 1/16).
fn q5_dots(qs: u32, qh: u32, lo: vec4<f32>, hi: vec4<f32>) -> vec2<f32> {
    let h = vec4<i32>(bitcast<i32>(qh));
    let bit0 = vec4<f32>(h & vec4<i32>(0x1, 0x100, 0x10000, 0x1000000));
    let bit1 = vec4<f32>(h & vec4<i32>(0x2, 0x200, 0x20000, 0x2000000));
    return nibble_dots(qs, lo, hi) + vec2<f32>(16.0 * dot(bit0, lo), 128.0 * dot(bit1, hi));
}

fn q5k_chunk_dot(row: u32, b: u32, xb: XBlock) -> f32 {
    let base = (row * (params.k / 256u) + b / 4u) * 11u;
    let c = b % 4u;
    let head = weights4[base];
    let shift = 2u * c;
    let h0 = weights4[base + 1u] >> vec4<u32>(shift);
    let h1 = weights4[base + 2u] >> vec4<u32>(shift);
    let q0 = weights4[base + 3u + 2u * c];
    let q1 = weights4[base + 4u + 2u * c];
    let v = xb.v;
    let q = q5_dots(q0.x, h0.x, v[0], v[8]) + q5_dots(q0.y, h0.y, v[1], v[9]) + q5_dots(q0.z, h0.z, v[2], v[10]) + q5_dots(q0.w, h0.w, v[3], v[11])
        + q5_dots(q1.x, h1.x, v[4], v[12]) + q5_dots(q1.y, h1.y, v[5], v[13]) + q5_dots(q1.z, h1.z, v[6], v[14]) + q5_dots(q1.w, h1.w, v[7], v[15]);
    let dm = unpack2x16float(head.x);
    let s = chunk_scales(head, c);
    return dm.x * (s.x * q.x + s.y * (q.y + xb.fix)) - dm.y * (s.z * xb.sum.x + s.w * xb.sum.y);
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    return vec4<f32>(q5k_chunk_dot(rows.x, b, xb), q5k_chunk_dot(rows.y, b, xb), q5k_chunk_dot(rows.z, b, xb), q5k_chunk_dot(rows.w, b, xb));
}
