// Q6_K block dot (layout in weights/q6_k.wgsl): a super-block body is 13 vec4: ql (8), qh
// (4), scales (1). Each half n (128 values) has four quadrants qd of 32 values; value l of
// quadrant qd takes a nibble of ql word 16n + 8 (qd % 2) + l / 4 (low nibbles for qd < 2),
// two bits 2qd of qh word 32 + 8n + l / 4, and signed scale byte 8n + 2qd + l / 16.
// value = d * scale * (q - 32): per group of 16 values d * scale * (q · x - 32 Σx), the Σx
// shared by the thread's rows. Activation group (n, qd, part p = l / 16) is v[8n + 2qd + p].
const BLOCK_VALUES: u32 = 256u;

/// The super-block's activations in groups of 16, and sums[2n + p]: Σx of part p of each
/// quadrant of half n.
struct XBlock {
    v: array<array<vec4<f32>, 4>, 16>,
    sums: array<vec4<f32>, 4>,
}

fn x_block(xi: u32) -> XBlock {
    let v = array<array<vec4<f32>, 4>, 16>(
        x16(xi), x16(xi + 4u), x16(xi + 8u), x16(xi + 12u), x16(xi + 16u), x16(xi + 20u), x16(xi + 24u), x16(xi + 28u),
        x16(xi + 32u), x16(xi + 36u), x16(xi + 40u), x16(xi + 44u), x16(xi + 48u), x16(xi + 52u), x16(xi + 56u), x16(xi + 60u),
    );
    let sums = array<vec4<f32>, 4>(
        vec4<f32>(sum16(v[0]), sum16(v[2]), sum16(v[4]), sum16(v[6])),
        vec4<f32>(sum16(v[1]), sum16(v[3]), sum16(v[5]), sum16(v[7])),
        vec4<f32>(sum16(v[8]), sum16(v[10]), sum16(v[12]), sum16(v[14])),
        vec4<f32>(sum16(v[9]), sum16(v[11]), sum16(v[13]), sum16(v[15])),
    );
    return XBlock(v, sums);
}

// q · x of four values of each quadrant, from ql words a (quadrants 0, 2) and b (1, 3) and
// qh word h; the 6-bit values are assembled in integer lanes (high bits to bits 4..6).
fn q6k_word(a: u32, b: u32, h: u32, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        dot(bytes_u((a & 0x0f0f0f0fu) | ((h << 4u) & 0x30303030u)), x0),
        dot(bytes_u((b & 0x0f0f0f0fu) | ((h << 2u) & 0x30303030u)), x1),
        dot(bytes_u(((a >> 4u) & 0x0f0f0f0fu) | (h & 0x30303030u)), x2),
        dot(bytes_u(((b >> 4u) & 0x0f0f0f0fu) | ((h >> 2u) & 0x30303030u)), x3),
    );
}

// q · x of one part (16 values) of each quadrant of a half: words of vec4 a, b, h.
fn q6k_part(a: vec4<u32>, b: vec4<u32>, h: vec4<u32>, x0: array<vec4<f32>, 4>, x1: array<vec4<f32>, 4>, x2: array<vec4<f32>, 4>, x3: array<vec4<f32>, 4>) -> vec4<f32> {
    return q6k_word(a.x, b.x, h.x, x0[0], x1[0], x2[0], x3[0]) + q6k_word(a.y, b.y, h.y, x0[1], x1[1], x2[1], x3[1])
        + q6k_word(a.z, b.z, h.z, x0[2], x1[2], x2[2], x3[2]) + q6k_word(a.w, b.w, h.w, x0[3], x1[3], x2[3], x3[3]);
}

fn q6k_row(row: u32, b: u32, xb: XBlock) -> f32 {
    let x = xb.v;
    let sums = xb.sums;
    let block = row * (params.k / 256u) + b;
    let base = block * 13u;
    let s = weights4[base + 12u];
    let s0 = bytes_i(s.x);
    let s1 = bytes_i(s.y);
    let s2 = bytes_i(s.z);
    let s3 = bytes_i(s.w);
    let h0p0 = q6k_part(weights4[base], weights4[base + 2u], weights4[base + 8u], x[0], x[2], x[4], x[6]);
    let h0p1 = q6k_part(weights4[base + 1u], weights4[base + 3u], weights4[base + 9u], x[1], x[3], x[5], x[7]);
    let h1p0 = q6k_part(weights4[base + 4u], weights4[base + 6u], weights4[base + 10u], x[8], x[10], x[12], x[14]);
    let h1p1 = q6k_part(weights4[base + 5u], weights4[base + 7u], weights4[base + 11u], x[9], x[11], x[13], x[15]);
    return plane_scale(block) * (dot(h0p0 - 32.0 * sums[0], vec4<f32>(s0.x, s0.z, s1.x, s1.z)) + dot(h0p1 - 32.0 * sums[1], vec4<f32>(s0.y, s0.w, s1.y, s1.w))
        + dot(h1p0 - 32.0 * sums[2], vec4<f32>(s2.x, s2.z, s3.x, s3.z)) + dot(h1p1 - 32.0 * sums[3], vec4<f32>(s2.y, s2.w, s3.y, s3.w)));
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    return vec4<f32>(q6k_row(rows.x, b, xb), q6k_row(rows.y, b, xb), q6k_row(rows.z, b, xb), q6k_row(rows.w, b, xb));
}
