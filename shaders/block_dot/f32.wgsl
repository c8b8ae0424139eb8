// F32 block dot: 32 values (8 vec4) per call.
const BLOCK_VALUES: u32 = 32u;

fn block_dot(row: u32, b: u32, xi: u32) -> f32 {
    let at = row * params.k + b * 32u;
    var acc = 0.0;
    for (var i = 0u; i < 8u; i++) {
        let w = vec4<f32>(bitcast<f32>(weights[at + 4u * i]), bitcast<f32>(weights[at + 4u * i + 1u]), bitcast<f32>(weights[at + 4u * i + 2u]), bitcast<f32>(weights[at + 4u * i + 3u]));
        acc += dot(w, x4(xi + i));
    }
    return acc;
}
