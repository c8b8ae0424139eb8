// Q6_K block dot (layout in weights/q6_k.wgsl). Each half n of the super-block (128 values)
// has four quadrants qd of 32 values; value l of quadrant qd takes a nibble of ql word
// 16n + 8 (qd % 2) + l / 4 (low nibbles for qd < 2), two bits 2qd of qh word 32 + 8n + l / 4,
// and signed scale byte 8n + 2qd + l / 16.  value = d * scale * (q - 32)
const BLOCK_VALUES: u32 = 256u;

// Values l in [16 part, 16 part + 16) of the four quadrants of half n, with their four scales.
fn q6k_part(base: u32, n: u32, part: u32, xi: u32, scales: vec4<f32>) -> f32 {
    var acc = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let i = 4u * part + j;
        let a = weights[base + 16u * n + i];
        let b = weights[base + 16u * n + 8u + i];
        let h = weights[base + 32u + 8u * n + i];
        let x = xi + 32u * n + i;
        // The 6-bit values assembled in integer lanes (high bits to bits 4..6), then converted.
        acc += vec4<f32>(
            dot(bytes_u((a & 0x0f0f0f0fu) | ((h << 4u) & 0x30303030u)) - 32.0, x4(x)),
            dot(bytes_u((b & 0x0f0f0f0fu) | ((h << 2u) & 0x30303030u)) - 32.0, x4(x + 8u)),
            dot(bytes_u(((a >> 4u) & 0x0f0f0f0fu) | (h & 0x30303030u)) - 32.0, x4(x + 16u)),
            dot(bytes_u(((b >> 4u) & 0x0f0f0f0fu) | ((h >> 2u) & 0x30303030u)) - 32.0, x4(x + 24u)),
        );
    }
    return dot(acc, scales);
}

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let block = row * (params.k / 256u) + b;
    let base = block * 52u;
    let d = plane_scale(block);
    var acc = 0.0;
    for (var n = 0u; n < 2u; n++) {
        // Scale bytes 8n .. 8n + 8: quadrant qd, part p at byte 2qd + p.
        let s0 = bytes_i(weights[base + 48u + 2u * n]);
        let s1 = bytes_i(weights[base + 49u + 2u * n]);
        acc += q6k_part(base, n, 0u, xi, vec4<f32>(s0.x, s0.z, s1.x, s1.z)) + q6k_part(base, n, 1u, xi, vec4<f32>(s0.y, s0.w, s1.y, s1.w));
    }
    return d * acc;
}
