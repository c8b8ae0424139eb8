// Q6_K block dot (layout in weights/q6_k.wgsl): a super-block body is 13 vec4: ql (8), qh
// (4), scales (1). Each half n (128 values) has four quadrants qd of 32 values; value l of
// quadrant qd takes a nibble of ql word 16n + 8 (qd % 2) + l / 4 (low nibbles for qd < 2),
// two bits 2qd of qh word 32 + 8n + l / 4, and signed scale byte 8n + 2qd + l / 16.
// value = d * scale * (q - 32): per group of 16 values d * scale * (q · x - 32 Σx), the Σx
// shared by the thread's rows. Activation group (n, qd, part p = l / 16) is v[8n + 2qd + p].
const BLOCK_VALUES: u32 = 256u;
// Values are read in place (matvec_cpu.wgsl): a quadrant's four values in a word are the
// nibble fields of ql (low nibbles for quadrants 0, 1, high for 2, 3) plus 16 × the 2-bit
// fields of qh at bits 2qd of each byte. Against activations scaled for the quadrant's nibble
// fields, qh field qd (value · 4^qd · 256^j) weighs 16, 4, 16, 4 for qd = 0..4. The words'
// top bits are flipped: the top value of quadrant 2 reads 8 low, of quadrant 3 8 + 32 low,
// which the groups' offsets give back.

/// The super-block's activations in groups of 16, scaled for their quadrant's nibble fields,
/// and offsets[2n + p]: per quadrant of half n, part p, 32 Σx less the flipped fields' fix.
struct XBlock {
    v: array<array<vec4<f32>, 4>, 16>,
    offsets: array<vec4<f32>, 4>,
}

fn scaled16(x: array<vec4<f32>, 4>, s: vec4<f32>) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(x[0] * s, x[1] * s, x[2] * s, x[3] * s);
}

fn tops16(x: array<vec4<f32>, 4>) -> f32 {
    return x[0].w + x[1].w + x[2].w + x[3].w;
}

/// 32 Σx less the fixes of groups (n, qd, p) for qd = 0..4, from v[8n + p] on.
fn group_offsets(x: array<array<vec4<f32>, 4>, 16>, first: u32) -> vec4<f32> {
    let sums = vec4<f32>(sum16(x[first]), sum16(x[first + 2u]), sum16(x[first + 4u]), sum16(x[first + 6u]));
    return 32.0 * sums - vec4<f32>(0.0, 0.0, 8.0 * tops16(x[first + 4u]), 40.0 * tops16(x[first + 6u]));
}

fn x_block(xi: u32) -> XBlock {
    let x = array<array<vec4<f32>, 4>, 16>(
        x16(xi), x16(xi + 4u), x16(xi + 8u), x16(xi + 12u), x16(xi + 16u), x16(xi + 20u), x16(xi + 24u), x16(xi + 28u),
        x16(xi + 32u), x16(xi + 36u), x16(xi + 40u), x16(xi + 44u), x16(xi + 48u), x16(xi + 52u), x16(xi + 56u), x16(xi + 60u),
    );
    let lo = BYTE_SCALES;
    let hi = BYTE_SCALES / 16.0;
    let v = array<array<vec4<f32>, 4>, 16>(
        scaled16(x[0], lo), scaled16(x[1], lo), scaled16(x[2], lo), scaled16(x[3], lo), scaled16(x[4], hi), scaled16(x[5], hi), scaled16(x[6], hi), scaled16(x[7], hi),
        scaled16(x[8], lo), scaled16(x[9], lo), scaled16(x[10], lo), scaled16(x[11], lo), scaled16(x[12], hi), scaled16(x[13], hi), scaled16(x[14], hi), scaled16(x[15], hi),
    );
    return XBlock(v, array<vec4<f32>, 4>(group_offsets(x, 0u), group_offsets(x, 1u), group_offsets(x, 8u), group_offsets(x, 9u)));
}

/// The 2-bit fields of quadrant qd in the four bytes of a qh word (0xc0000000 as i32).
const QH0 = vec4<i32>(0x3, 0x300, 0x30000, 0x3000000);
const QH1 = vec4<i32>(0xc, 0xc00, 0xc0000, 0xc000000);
const QH2 = vec4<i32>(0x30, 0x3000, 0x300000, 0x30000000);
const QH3 = vec4<i32>(0xc0, 0xc000, 0xc00000, -0x40000000);

// q · x of four values of each quadrant, from ql words a (quadrants 0, 2) and b (1, 3) and
// qh word h, each with its top bit flipped.
fn q6k_word(a: vec4<i32>, b: vec4<i32>, h: vec4<i32>, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        dot(vec4<f32>((a & LOW_NIBBLES) + (h & QH0) * 16), x0),
        dot(vec4<f32>((b & LOW_NIBBLES) + (h & QH1) * 4), x1),
        dot(vec4<f32>(a & HIGH_NIBBLES) + 16.0 * vec4<f32>(h & QH2), x2),
        dot(vec4<f32>(b & HIGH_NIBBLES) + 4.0 * vec4<f32>(h & QH3), x3),
    );
}

fn flipped(w: u32) -> vec4<i32> {
    return vec4<i32>(bitcast<i32>(w ^ 0x80000000u));
}

// q · x of one part (16 values) of each quadrant of a half: words of vec4 a, b, h.
fn q6k_part(a: vec4<u32>, b: vec4<u32>, h: vec4<u32>, x0: array<vec4<f32>, 4>, x1: array<vec4<f32>, 4>, x2: array<vec4<f32>, 4>, x3: array<vec4<f32>, 4>) -> vec4<f32> {
    return q6k_word(flipped(a.x), flipped(b.x), flipped(h.x), x0[0], x1[0], x2[0], x3[0]) + q6k_word(flipped(a.y), flipped(b.y), flipped(h.y), x0[1], x1[1], x2[1], x3[1])
        + q6k_word(flipped(a.z), flipped(b.z), flipped(h.z), x0[2], x1[2], x2[2], x3[2]) + q6k_word(flipped(a.w), flipped(b.w), flipped(h.w), x0[3], x1[3], x2[3], x3[3]);
}

fn q6k_row(row: u32, b: u32, xb: XBlock) -> f32 {
    let x = xb.v;
    let offsets = xb.offsets;
    let block = row * (params.k / 256u) + b;
    let base = block * 13u;
    let s = weights4[base + 12u];
    let s0 = signed_bytes(s.x);
    let s1 = signed_bytes(s.y);
    let s2 = signed_bytes(s.z);
    let s3 = signed_bytes(s.w);
    let h0p0 = q6k_part(weights4[base], weights4[base + 2u], weights4[base + 8u], x[0], x[2], x[4], x[6]);
    let h0p1 = q6k_part(weights4[base + 1u], weights4[base + 3u], weights4[base + 9u], x[1], x[3], x[5], x[7]);
    let h1p0 = q6k_part(weights4[base + 4u], weights4[base + 6u], weights4[base + 10u], x[8], x[10], x[12], x[14]);
    let h1p1 = q6k_part(weights4[base + 5u], weights4[base + 7u], weights4[base + 11u], x[9], x[11], x[13], x[15]);
    return plane_scale(block) * (dot(h0p0 - offsets[0], vec4<f32>(s0.x, s0.z, s1.x, s1.z)) + dot(h0p1 - offsets[1], vec4<f32>(s0.y, s0.w, s1.y, s1.w))
        + dot(h1p0 - offsets[2], vec4<f32>(s2.x, s2.z, s3.x, s3.z)) + dot(h1p1 - offsets[3], vec4<f32>(s2.y, s2.w, s3.y, s3.w)));
}

fn block_dot4(rows: vec4<u32>, b: u32, xb: XBlock) -> vec4<f32> {
    return vec4<f32>(q6k_row(rows.x, b, xb), q6k_row(rows.y, b, xb), q6k_row(rows.z, b, xb), q6k_row(rows.w, b, xb));
}
