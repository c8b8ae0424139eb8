// Q4_K: super-blocks of 256 values in 36 words: word 0 = f16 d | f16 dmin << 16,
// words 1..3 = 8 packed 6-bit (scale, min) pairs, words 4..35 = qs (128 bytes).
// Value e: chunk c = e / 64, half h = (e % 64) / 32, l = e % 32; q is the low (h = 0) or
// high (h = 1) nibble of qs[32c + l]; sub-block 2c + h gives (sc, mn).
// value = d * sc * q - dmin * mn
fn load_w8(row: u32, k: u32) -> W8 {
    let block = row * (params.k / 256u) + k / 256u;
    let e = k % 256u;
    let c = e / 64u;
    let h = (e % 64u) / 32u;
    let l = e % 32u;
    let base = block * 36u;
    let dm = unpack2x16float(weights[base]);
    let sm = scale_min_k4(base + 1u, 2u * c + h);
    let scale = dm.x * sm.x;
    let offset = dm.y * sm.y;
    let w = base + 4u + (32u * c + l) / 4u;
    var lo = nibbles_lo(weights[w]);
    var hi = nibbles_lo(weights[w + 1u]);
    if (h == 1u) {
        lo = nibbles_hi(weights[w]);
        hi = nibbles_hi(weights[w + 1u]);
    }
    return W8(lo * scale - offset, hi * scale - offset);
}
