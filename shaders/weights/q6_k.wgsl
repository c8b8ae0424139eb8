// Q6_K: super-blocks of 256 values. Body (52 words): words 0..31 = ql (128 bytes),
// words 32..47 = qh (64 bytes), words 48..51 = 16 signed 8-bit scales. Scale plane: f16 d.
// Value e: half n = e / 128, quadrant qd = (e % 128) / 32, l = e % 32.
// Low 4 bits: nibble (low for qd < 2, high otherwise) of ql[64n + l + 32 (qd % 2)];
// high 2 bits: bits 2qd..2qd+2 of qh[32n + l]; scale: scales[8n + l / 16 + 2qd].
// value = d * scale * (q - 32)
fn load_w8(row: u32, k: u32) -> W8 {
    let block = row * (params.k / 256u) + k / 256u;
    let e = k % 256u;
    let n = e / 128u;
    let qd = (e % 128u) / 32u;
    let l = e % 32u;
    let base = block * 52u;
    let ql = base + (64u * n + l + 32u * (qd % 2u)) / 4u;
    var lo = nibbles_lo(weights[ql]);
    var hi = nibbles_lo(weights[ql + 1u]);
    if (qd >= 2u) {
        lo = nibbles_hi(weights[ql]);
        hi = nibbles_hi(weights[ql + 1u]);
    }
    let qh = base + 32u + (32u * n + l) / 4u;
    let shift = 2u * qd;
    lo += 16.0 * bytes_u((weights[qh] >> shift) & 0x03030303u);
    hi += 16.0 * bytes_u((weights[qh + 1u] >> shift) & 0x03030303u);
    let s = 8u * n + l / 16u + 2u * qd;
    let sc = f32((bitcast<i32>(byte_of(weights[base + 48u + s / 4u], s % 4u)) << 24u) >> 24u);
    let scale = plane_scale(block) * sc;
    return W8((lo - 32.0) * scale, (hi - 32.0) * scale);
}
