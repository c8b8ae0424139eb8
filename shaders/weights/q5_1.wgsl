// Q5_1: blocks of 32 values in 6 words: word 0 = f16 d | f16 m << 16, word 1 = qh (bit j the
// 5th bit of value j), words 2..5 = qs (nibbles ordered as in Q4_0). value = d * q + m
fn load_w8(row: u32, k: u32) -> W8 {
    let block = row * (params.k / 32u) + k / 32u;
    let j = k % 32u;
    let base = block * 6u;
    let dm = unpack2x16float(weights[base]);
    let high = weights[base + 1u] >> j;
    let w = base + 2u + (j % 16u) / 4u;
    var lo = nibbles_lo(weights[w]);
    var hi = nibbles_lo(weights[w + 1u]);
    if (j >= 16u) {
        lo = nibbles_hi(weights[w]);
        hi = nibbles_hi(weights[w + 1u]);
    }
    return W8((lo + 16.0 * bits4(high)) * dm.x + dm.y, (hi + 16.0 * bits4(high >> 4u)) * dm.x + dm.y);
}
