// Q5_K: super-blocks of 256 values in 44 words: word 0 = f16 d | f16 dmin << 16,
// words 1..3 = 8 packed 6-bit (scale, min) pairs, words 4..11 = qh (32 bytes),
// words 12..43 = qs (128 bytes). As Q4_K, plus a 5th bit: bit (2c + h) of qh[l].
// value = d * sc * q - dmin * mn
fn load_w8(row: u32, k: u32) -> W8 {
    let block = row * (params.k / 256u) + k / 256u;
    let e = k % 256u;
    let c = e / 64u;
    let h = (e % 64u) / 32u;
    let l = e % 32u;
    let base = block * 44u;
    let dm = unpack2x16float(weights[base]);
    let sm = scale_min_k4(base + 1u, 2u * c + h);
    let scale = dm.x * sm.x;
    let offset = dm.y * sm.y;
    let shift = 2u * c + h;
    let qh = base + 4u + l / 4u;
    let high_lo = bytes_u((weights[qh] >> shift) & 0x01010101u);
    let high_hi = bytes_u((weights[qh + 1u] >> shift) & 0x01010101u);
    let w = base + 12u + (32u * c + l) / 4u;
    var lo = nibbles_lo(weights[w]);
    var hi = nibbles_lo(weights[w + 1u]);
    if (h == 1u) {
        lo = nibbles_hi(weights[w]);
        hi = nibbles_hi(weights[w + 1u]);
    }
    return W8((lo + 16.0 * high_lo) * scale - offset, (hi + 16.0 * high_hi) * scale - offset);
}
