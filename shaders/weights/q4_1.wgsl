// Q4_1: blocks of 32 values in 5 words: word 0 = f16 d | f16 m << 16, words 1..4 = qs
// (nibbles ordered as in Q4_0). value = d * q + m
fn load_w8(row: u32, k: u32) -> W8 {
    let block = row * (params.k / 32u) + k / 32u;
    let j = k % 32u;
    let base = block * 5u;
    let dm = unpack2x16float(weights[base]);
    let w = base + 1u + (j % 16u) / 4u;
    let a = weights[w];
    let b = weights[w + 1u];
    if (j < 16u) {
        return W8(nibbles_lo(a) * dm.x + dm.y, nibbles_lo(b) * dm.x + dm.y);
    }
    return W8(nibbles_hi(a) * dm.x + dm.y, nibbles_hi(b) * dm.x + dm.y);
}
