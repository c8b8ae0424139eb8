// F16 block dot: 32 values (four vec4 of words) per call.
const BLOCK_VALUES: u32 = 32u;

fn f16_vec4(w: vec4<u32>, xi: u32) -> f32 {
    return dot(vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)), x4(xi)) + dot(vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)), x4(xi + 1u));
}

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let at = (row * params.k + b * 32u) / 8u;
    return f16_vec4(weights4[at], xi) + f16_vec4(weights4[at + 1u], xi + 2u) + f16_vec4(weights4[at + 2u], xi + 4u) + f16_vec4(weights4[at + 3u], xi + 6u);
}
