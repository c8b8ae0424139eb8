// F16 block dot: 32 values (four vec4 of words) per call.
const BLOCK_VALUES: u32 = 32u;
alias XBlock = X32;

fn x_block(xi: u32) -> XBlock {
    return x32_block(xi);
}

fn f16_pairs(w: u32, v: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(w), unpack2x16float(v));
}

fn f16_dot(row: u32, b: u32, x: array<vec4<f32>, 8>) -> f32 {
    let at = (row * params.k + b * 32u) / 8u;
    let w0 = weights4[at];
    let w1 = weights4[at + 1u];
    let w2 = weights4[at + 2u];
    let w3 = weights4[at + 3u];
    return dot(f16_pairs(w0.x, w0.y), x[0]) + dot(f16_pairs(w0.z, w0.w), x[1]) + dot(f16_pairs(w1.x, w1.y), x[2]) + dot(f16_pairs(w1.z, w1.w), x[3])
        + dot(f16_pairs(w2.x, w2.y), x[4]) + dot(f16_pairs(w2.z, w2.w), x[5]) + dot(f16_pairs(w3.x, w3.y), x[6]) + dot(f16_pairs(w3.z, w3.w), x[7]);
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    let x = xb.v;
    return vec4<f32>(f16_dot(rows.x, b, x), f16_dot(rows.y, b, x), f16_dot(rows.z, b, x), f16_dot(rows.w, b, x));
}
