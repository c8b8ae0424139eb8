// Q8_0: blocks of 32 values. Body: 32 signed bytes q (8 words). Scale plane: f16 d.
// value = d * q
fn load_w8(row: u32, k: u32) -> W8 {
    let block = row * (params.k / 32u) + k / 32u;
    let w = block * 8u + (k % 32u) / 4u;
    let d = plane_scale(block);
    return W8(bytes_i(weights[w]) * d, bytes_i(weights[w + 1u]) * d);
}
