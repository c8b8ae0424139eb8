// Shared helpers for reading quantized weights.
//
// Every weight format file in this folder defines
//     fn load_w8(row: u32, k: u32) -> W8
// returning the 8 consecutive values W[row, k..k+8] (k a multiple of 8) as f32. Matrix
// kernels are written once against that function and specialised per format by prepending
// `common.wgsl` and the format's file to the kernel source.
//
// Contract with the including kernel: it declares
//     var<storage, read> weights: array<u32>;    // the tensor (or a row chunk) in GPU layout
//     var<uniform> params: <struct with fields `k` (row length in values) and
//                                  `scale_offset` (word offset of the f16 scale plane)>;
// shaders/block_dot/ adds, per format, the whole-block code of matvec_cpu.wgsl:
//     const BLOCK_VALUES: u32;  struct XBlock;  fn x_block(xi: u32) -> XBlock
//     fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32>
// x_block reads one block's activations from vec4 xi on (once per thread), block_dot4 gives
// W[row, b*BLOCK_VALUES ..] · those activations for four rows; the rarer formats define a
// one-row `block_dot(row, b, xi)` instead, which block_dot/by_row.wgsl wraps.
// The GPU layout is described in crates/hearth-gguf/src/quant.rs: blocks are uploaded as
// 32-bit words; Q8_0, Q4_0, Q5_0 and Q6_K keep their f16 scale `d` in a separate plane
// after all block bodies, two scales per word.

struct W8 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

fn byte_of(word: u32, i: u32) -> u32 {
    return (word >> (8u * i)) & 0xffu;
}

// The four unsigned bytes of a word. Converted from i32 (same values): CPU adapters have no
// unsigned conversion instruction and emulate one with five (SwiftShader) per component.
fn bytes_u(w: u32) -> vec4<f32> {
    let v = bitcast<i32>(w);
    return vec4<f32>(f32(v & 0xff), f32((v >> 8u) & 0xff), f32((v >> 16u) & 0xff), f32(bitcast<i32>(w >> 24u)));
}

// The four signed bytes of a word.
fn bytes_i(w: u32) -> vec4<f32> {
    let v = bitcast<i32>(w);
    return vec4<f32>(f32((v << 24u) >> 24u), f32((v << 16u) >> 24u), f32((v << 8u) >> 24u), f32(v >> 24u));
}

// Low nibbles of the four bytes of a word.
fn nibbles_lo(w: u32) -> vec4<f32> {
    return bytes_u(w & 0x0f0f0f0fu);
}

// High nibbles of the four bytes of a word.
fn nibbles_hi(w: u32) -> vec4<f32> {
    return bytes_u((w >> 4u) & 0x0f0f0f0fu);
}

// Bits 0..4 of x as four 0/1 values.
fn bits4(x: u32) -> vec4<f32> {
    let v = bitcast<i32>(x);
    return vec4<f32>(f32(v & 1), f32((v >> 1u) & 1), f32((v >> 2u) & 1), f32((v >> 3u) & 1));
}

// The f16 scale of block `block` from the scale plane.
fn plane_scale(block: u32) -> f32 {
    return unpack2x16float(weights[params.scale_offset + block / 2u])[block & 1u];
}
