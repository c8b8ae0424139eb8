// Q6_K block dot for GPUs (layout in weights/q6_k.wgsl): a block is one 32-value quadrant qd
// of half n of a super-block (32 · (4n + qd) values in). Value l takes a nibble of ql word
// 16n + 8 (qd % 2) + l / 4 (low nibbles for qd < 2), bits 2qd, 2qd + 1 of qh word
// 32 + 8n + l / 4, and signed scale byte 8n + 2qd + l / 16: two vec4 of ql, two of qh and
// one of scales, whose unused parts the quadrant's neighbours read from cache.
// value = d * scale * (q - 32): per 16 values d * scale * (q · x - 32 Σx).
const BLOCK_VALUES: u32 = 32u;

/// The quadrant's activations and the Σx of its two halves of 16.
struct XBlock {
    v: array<vec4<f32>, 8>,
    sum: vec2<f32>,
}

fn x_block(xi: u32) -> XBlock {
    let v = x32(xi);
    return XBlock(v, vec2<f32>(dot(v[0] + v[1] + v[2] + v[3], vec4<f32>(1.0)), dot(v[4] + v[5] + v[6] + v[7], vec4<f32>(1.0))));
}

/// The four 6-bit values of a ql word and a qh word.
fn q6(ql: u32, qh: u32, nibble_shift: u32, qh_shift: u32) -> vec4<f32> {
    return bytes_u(((ql >> nibble_shift) & 0x0f0f0f0fu) | (((qh >> qh_shift) & 0x03030303u) << 4u));
}

fn q6k_quadrant_dot(row: u32, b: u32, xb: XBlock) -> f32 {
    let block = row * (params.k / 256u) + b / 8u;
    let base = block * 13u;
    let n = (b % 8u) / 4u;
    let qd = b % 4u;
    let l0 = weights4[base + 4u * n + 2u * (qd % 2u)];
    let l1 = weights4[base + 4u * n + 2u * (qd % 2u) + 1u];
    let h0 = weights4[base + 8u + 2u * n];
    let h1 = weights4[base + 8u + 2u * n + 1u];
    let scales = weights4[base + 12u][2u * n + qd / 2u];
    let ns = 4u * (qd / 2u);
    let hs = 2u * qd;
    let v = xb.v;
    let q_lo = dot(q6(l0.x, h0.x, ns, hs), v[0]) + dot(q6(l0.y, h0.y, ns, hs), v[1]) + dot(q6(l0.z, h0.z, ns, hs), v[2]) + dot(q6(l0.w, h0.w, ns, hs), v[3]);
    let q_hi = dot(q6(l1.x, h1.x, ns, hs), v[4]) + dot(q6(l1.y, h1.y, ns, hs), v[5]) + dot(q6(l1.z, h1.z, ns, hs), v[6]) + dot(q6(l1.w, h1.w, ns, hs), v[7]);
    // The quadrant's two scale bytes sit at bytes 2 (qd % 2) and 2 (qd % 2) + 1 of the word.
    let sc = bitcast<i32>(scales << (16u - 16u * (qd % 2u)));
    let s = vec2<f32>(f32((sc << 8u) >> 24u), f32(sc >> 24u));
    return plane_scale(block) * (s.x * (q_lo - 32.0 * xb.sum.x) + s.y * (q_hi - 32.0 * xb.sum.y));
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    return vec4<f32>(q6k_quadrant_dot(rows.x, b, xb), q6k_quadrant_dot(rows.y, b, xb), q6k_quadrant_dot(rows.z, b, xb), q6k_quadrant_dot(rows.w, b, xb));
}
