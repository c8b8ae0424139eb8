// Q4_0: blocks of 32 values. Body: 16 bytes qs (4 words); value j < 16 is the low nibble of
// qs[j], value j >= 16 the high nibble of qs[j - 16]. Scale plane: f16 d.
// value = d * (q - 8)
fn load_w8(row: u32, k: u32) -> W8 {
    let block = row * (params.k / 32u) + k / 32u;
    let j = k % 32u;
    let w = block * 4u + (j % 16u) / 4u;
    let d = plane_scale(block);
    let a = weights[w];
    let b = weights[w + 1u];
    if (j < 16u) {
        return W8((nibbles_lo(a) - 8.0) * d, (nibbles_lo(b) - 8.0) * d);
    }
    return W8((nibbles_hi(a) - 8.0) * d, (nibbles_hi(b) - 8.0) * d);
}
