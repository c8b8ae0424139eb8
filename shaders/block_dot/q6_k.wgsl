// Q6_K block dot (layout in weights/q6_k.wgsl): a super-block body is 13 vec4: ql (8), qh
// (4), scales (1). Each half n (128 values) has four quadrants qd of 32 values; value l of
// quadrant qd takes a nibble of ql word 16n + 8 (qd % 2) + l / 4 (low nibbles for qd < 2),
// two bits 2qd of qh word 32 + 8n + l / 4, and signed scale byte 8n + 2qd + l / 16.
// value = d * scale * (q - 32). Unrolled by hand: SwiftShader runs loops as written.
const BLOCK_VALUES: u32 = 256u;

// Four values of each quadrant from ql words a (quadrants 0, 2) and b (1, 3) and qh word h;
// the 6-bit values are assembled in integer lanes (high bits to bits 4..6), then converted.
fn q6k_word(a: u32, b: u32, h: u32, x: u32) -> vec4<f32> {
    return vec4<f32>(
        dot(bytes_u((a & 0x0f0f0f0fu) | ((h << 4u) & 0x30303030u)) - 32.0, x4(x)),
        dot(bytes_u((b & 0x0f0f0f0fu) | ((h << 2u) & 0x30303030u)) - 32.0, x4(x + 8u)),
        dot(bytes_u(((a >> 4u) & 0x0f0f0f0fu) | (h & 0x30303030u)) - 32.0, x4(x + 16u)),
        dot(bytes_u(((b >> 4u) & 0x0f0f0f0fu) | ((h >> 2u) & 0x30303030u)) - 32.0, x4(x + 24u)),
    );
}

// Values l in [16 p, 16 p + 16) of the four quadrants of one half: words of vec4 a, b, h.
fn q6k_part(a: vec4<u32>, b: vec4<u32>, h: vec4<u32>, x: u32, scales: vec4<f32>) -> f32 {
    return dot(q6k_word(a.x, b.x, h.x, x) + q6k_word(a.y, b.y, h.y, x + 1u) + q6k_word(a.z, b.z, h.z, x + 2u) + q6k_word(a.w, b.w, h.w, x + 3u), scales);
}

fn q6k_half(base: u32, n: u32, s0: vec4<f32>, s1: vec4<f32>, xi: u32) -> f32 {
    // Scale bytes 8n .. 8n + 8 (s0, s1): quadrant qd, part p at byte 2qd + p.
    let x = xi + 32u * n;
    return q6k_part(weights4[base + 4u * n], weights4[base + 4u * n + 2u], weights4[base + 8u + 2u * n], x, vec4<f32>(s0.x, s0.z, s1.x, s1.z))
        + q6k_part(weights4[base + 4u * n + 1u], weights4[base + 4u * n + 3u], weights4[base + 9u + 2u * n], x + 4u, vec4<f32>(s0.y, s0.w, s1.y, s1.w));
}

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let block = row * (params.k / 256u) + b;
    let base = block * 13u;
    let s = weights4[base + 12u];
    return plane_scale(block) * (q6k_half(base, 0u, bytes_i(s.x), bytes_i(s.y), xi) + q6k_half(base, 1u, bytes_i(s.z), bytes_i(s.w), xi));
}
