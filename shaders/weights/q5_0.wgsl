// Q5_0: blocks of 32 values. Body (5 words): word 0 = qh, bit j the 5th bit of value j;
// words 1..4 = qs, low 4 bits (nibbles ordered as in Q4_0). Scale plane: f16 d.
// value = d * (q - 16)
fn load_w8(row: u32, k: u32) -> W8 {
    let block = row * (params.k / 32u) + k / 32u;
    let j = k % 32u;
    let base = block * 5u;
    let high = weights[base] >> j;
    let w = base + 1u + (j % 16u) / 4u;
    let d = plane_scale(block);
    var lo = nibbles_lo(weights[w]);
    var hi = nibbles_lo(weights[w + 1u]);
    if (j >= 16u) {
        lo = nibbles_hi(weights[w]);
        hi = nibbles_hi(weights[w + 1u]);
    }
    return W8((lo + 16.0 * bits4(high) - 16.0) * d, (hi + 16.0 * bits4(high >> 4u) - 16.0) * d);
}
