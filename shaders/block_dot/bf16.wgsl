// BF16 block dot: 32 values (16 words) per call; bf16_pair from weights/bf16.wgsl.
const BLOCK_VALUES: u32 = 32u;

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let at = (row * params.k + b * 32u) / 2u;
    var acc = 0.0;
    for (var i = 0u; i < 8u; i++) {
        let w = vec4<f32>(bf16_pair(weights[at + 2u * i]), bf16_pair(weights[at + 2u * i + 1u]));
        acc += dot(w, x4(xi + i));
    }
    return acc;
}
