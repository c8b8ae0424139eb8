// F16: two values per word (low half first), rows contiguous; row length is a multiple of 8.
fn load_w8(row: u32, k: u32) -> W8 {
    let i = (row * params.k + k) / 2u;
    let a = unpack2x16float(weights[i]);
    let b = unpack2x16float(weights[i + 1u]);
    let c = unpack2x16float(weights[i + 2u]);
    let d = unpack2x16float(weights[i + 3u]);
    return W8(vec4<f32>(a, b), vec4<f32>(c, d));
}
