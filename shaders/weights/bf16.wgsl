// BF16: two values per word (low half first); a bf16 is the top half of an f32.
fn bf16_pair(w: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}

fn load_w8(row: u32, k: u32) -> W8 {
    let i = (row * params.k + k) / 2u;
    return W8(vec4<f32>(bf16_pair(weights[i]), bf16_pair(weights[i + 1u])),
              vec4<f32>(bf16_pair(weights[i + 2u]), bf16_pair(weights[i + 3u])));
}
