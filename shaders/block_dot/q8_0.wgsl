// Q8_0 block dot (layout in weights/q8_0.wgsl): value = d * q; the body is two vec4 of signed
// bytes. Bytes are read in place (matvec_cpu.wgsl): the low three of each word with their sign
// bit flipped, so they read as q + 128 and `fix` takes 128 × their activations back off; the
// top byte converts with its own sign.
const BLOCK_VALUES: u32 = 32u;

/// The block's activations scaled by BYTE_SCALES, and the flipped bytes' correction.
struct XBlock {
    v: array<vec4<f32>, 8>,
    fix: f32,
}

fn x_block(xi: u32) -> XBlock {
    let x = x32(xi);
    let s = BYTE_SCALES;
    let v = array<vec4<f32>, 8>(x[0] * s, x[1] * s, x[2] * s, x[3] * s, x[4] * s, x[5] * s, x[6] * s, x[7] * s);
    let low3 = vec4<f32>(1.0, 1.0, 1.0, 0.0);
    return XBlock(v, -128.0 * dot(x[0] + x[1] + x[2] + x[3] + x[4] + x[5] + x[6] + x[7], low3));
}

fn byte_dot(w: u32, x: vec4<f32>) -> f32 {
    return dot(vec4<f32>(vec4<i32>(bitcast<i32>(w ^ 0x00808080u)) & BYTES), x);
}

fn q8_0_dot(block: u32, xb: XBlock) -> f32 {
    let x = xb.v;
    let a = weights4[2u * block];
    let b = weights4[2u * block + 1u];
    return plane_scale(block) * (byte_dot(a.x, x[0]) + byte_dot(a.y, x[1]) + byte_dot(a.z, x[2]) + byte_dot(a.w, x[3])
        + byte_dot(b.x, x[4]) + byte_dot(b.y, x[5]) + byte_dot(b.z, x[6]) + byte_dot(b.w, x[7]) + xb.fix);
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    let blocks = rows * (params.k / 32u) + b;
    return vec4<f32>(q8_0_dot(blocks.x, xb), q8_0_dot(blocks.y, xb), q8_0_dot(blocks.z, xb), q8_0_dot(blocks.w, xb));
}
