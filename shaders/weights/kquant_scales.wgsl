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
