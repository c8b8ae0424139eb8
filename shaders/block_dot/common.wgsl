// Helpers of the whole-block dot products (the files beside this one), shared by the matrix
// kernels that use them: matvec_cpu.wgsl (CPU-emulated adapters) and matvec_gpu.wgsl (GPUs).
// The including kernel defines `x_at(i)`, vec4 i of the activations (from a uniform window or
// a storage buffer, RMS-normalised or not), and declares the weights as `weights` (u32) and
// `weights4` (vec4<u32>).

/// Values i*4 .. i*4+4 of the activations.
fn x4(i: u32) -> vec4<f32> {
    return x_at(i);
}

/// The 16 or 32 values from vec4 i on, for a format's block code to index by constants.
fn x16(i: u32) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(x_at(i), x_at(i + 1u), x_at(i + 2u), x_at(i + 3u));
}

fn x32(i: u32) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(x_at(i), x_at(i + 1u), x_at(i + 2u), x_at(i + 3u), x_at(i + 4u), x_at(i + 5u), x_at(i + 6u), x_at(i + 7u));
}

fn sum16(v: array<vec4<f32>, 4>) -> f32 {
    return dot(v[0] + v[1] + v[2] + v[3], vec4<f32>(1.0));
}

fn sum32(v: array<vec4<f32>, 8>) -> f32 {
    return dot(v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7], vec4<f32>(1.0));
}

/// A 32-value block's activations and their sum (XBlock of the 32-value formats).
struct X32 {
    v: array<vec4<f32>, 8>,
    sum: f32,
}

fn x32_block(i: u32) -> X32 {
    let v = x32(i);
    return X32(v, sum32(v));
}

// Packed values are read without shifts. SwiftShader turns every vector shift into four
// scalar ones (extract, shift, insert per lane), which cost more than the rest of a block's
// arithmetic. A mask leaves a field in place, so a field p bits up converts to value · 2^p;
// the activation it multiplies is scaled by 2^-p once per block (exact: a power of two) and
// shared by the thread's rows. A word's top field would convert as negative (i32 is the only
// cheap conversion), so its top bit is flipped first: it then reads as value − 2^(width−1),
// and the block's `fix` term adds 2^(width−1) × its activation back.

/// Field scales of the four bytes of a word (bits 0, 8, 16, 24 up).
const BYTE_SCALES = vec4<f32>(1.0, 1.0 / 256.0, 1.0 / 65536.0, 1.0 / 16777216.0);
/// The low and high nibbles of the four bytes of a word, in place (0xf0000000 as i32).
const LOW_NIBBLES = vec4<i32>(0xf, 0xf00, 0xf0000, 0xf000000);
const HIGH_NIBBLES = vec4<i32>(0xf0, 0xf000, 0xf00000, -0x10000000);
/// The four bytes of a word, in place (0xff000000 as i32).
const BYTES = vec4<i32>(0xff, 0xff00, 0xff0000, -0x1000000);

/// The four signed bytes of a word: the low three flipped to read as q + 128.
fn signed_bytes(w: u32) -> vec4<f32> {
    return vec4<f32>(vec4<i32>(bitcast<i32>(w ^ 0x00808080u)) & BYTES) * BYTE_SCALES - vec4<f32>(128.0, 128.0, 128.0, 0.0);
}

/// The activations of a 32-value block of 4-bit values (Q4_0, Q4_1): `v[i]` (values 4i..4i+4)
/// scaled for low nibbles for i < 4, for high nibbles from 4 on (values 16.. of the block);
/// `sum` their Σx and `fix` the correction of the four flipped top nibbles.
struct XNibbles {
    v: array<vec4<f32>, 8>,
    sum: f32,
    fix: f32,
}

fn x_nibbles(i: u32) -> XNibbles {
    let x = x32(i);
    let lo = BYTE_SCALES;
    let hi = BYTE_SCALES / 16.0;
    let v = array<vec4<f32>, 8>(x[0] * lo, x[1] * lo, x[2] * lo, x[3] * lo, x[4] * hi, x[5] * hi, x[6] * hi, x[7] * hi);
    return XNibbles(v, sum32(x), 8.0 * (x[4].w + x[5].w + x[6].w + x[7].w));
}

/// (low nibbles of w) · lo and (high nibbles, the top one flipped) · hi, for lo and hi scaled
/// as in XNibbles.
fn nibble_dots(w: u32, lo: vec4<f32>, hi: vec4<f32>) -> vec2<f32> {
    let v = vec4<i32>(bitcast<i32>(w ^ 0x80000000u));
    return vec2<f32>(dot(vec4<f32>(v & LOW_NIBBLES), lo), dot(vec4<f32>(v & HIGH_NIBBLES), hi));
}

/// q · x for 32 4-bit values in four words from `word` on, low nibbles holding values 0..16
/// and high ones 16..32 (Q4_0 and Q4_1 blocks), less x.fix (the flipped top nibbles).
fn q4_32_dot(word: u32, x: XNibbles) -> f32 {
    let v = x.v;
    let d = nibble_dots(weights[word], v[0], v[4]) + nibble_dots(weights[word + 1u], v[1], v[5])
        + nibble_dots(weights[word + 2u], v[2], v[6]) + nibble_dots(weights[word + 3u], v[3], v[7]);
    return d.x + d.y;
}
