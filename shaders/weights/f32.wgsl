// F32: one value per word, rows contiguous.
fn load_w8(row: u32, k: u32) -> W8 {
    let i = row * params.k + k;
    return W8(
        vec4<f32>(bitcast<f32>(weights[i]), bitcast<f32>(weights[i + 1u]), bitcast<f32>(weights[i + 2u]), bitcast<f32>(weights[i + 3u])),
        vec4<f32>(bitcast<f32>(weights[i + 4u]), bitcast<f32>(weights[i + 5u]), bitcast<f32>(weights[i + 6u]), bitcast<f32>(weights[i + 7u])));
}
