// Scale and min of sub-block j (0..8) of a Q4_K/Q5_K block: 6-bit values packed in the 12
// bytes that start at word `base` (ggml's get_scale_min_k4).
fn kscale_byte(base: u32, i: u32) -> u32 {
    return byte_of(weights[base + i / 4u], i % 4u);
}

fn scale_min_k4(base: u32, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(kscale_byte(base, j) & 63u), f32(kscale_byte(base, j + 4u) & 63u));
    }
    let sc = (kscale_byte(base, j + 4u) & 15u) | ((kscale_byte(base, j - 4u) >> 6u) << 4u);
    let mn = (kscale_byte(base, j + 4u) >> 4u) | ((kscale_byte(base, j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(mn));
}

// All eight (scale, min) pairs at once from the three words s0, s1, s2 of packed bytes:
// scales of sub-blocks 0..3 and 4..7, then mins of 0..3 and 4..7.
struct KScales {
    sc_lo: vec4<f32>,
    sc_hi: vec4<f32>,
    mn_lo: vec4<f32>,
    mn_hi: vec4<f32>,
}

fn k4_scales_mins(s0: u32, s1: u32, s2: u32) -> KScales {
    return KScales(
        bytes_u(s0 & 0x3f3f3f3fu),
        bytes_u((s2 & 0x0f0f0f0fu) | ((s0 >> 2u) & 0x30303030u)),
        bytes_u(s1 & 0x3f3f3f3fu),
        bytes_u(((s2 >> 4u) & 0x0f0f0f0fu) | ((s1 >> 2u) & 0x30303030u)),
    );
}
