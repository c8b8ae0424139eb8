//! ggml quantization blocks: CPU dequantization and the GPU repacking.
//!
//! ## GPU layout
//! WGSL storage buffers hold 32-bit words, so a block must start on a 4-byte boundary.
//! Most types already have 4-byte-multiple blocks and are uploaded verbatim. Four types carry
//! a 2-byte f16 scale `d` next to a 4-byte-multiple body (Q8_0: 2+32, Q4_0: 2+16,
//! Q5_0: 2+20, Q6_K: 208+2); those are split into two planes in the same buffer:
//!
//! ```text
//! [ body of block 0 | body of block 1 | … | body of block n-1 ][ d0 d1 | d2 d3 | … ]
//!   body_words(ty) words each                                   f16 pairs, one word each
//! ```
//!
//! so nothing is padded and each block's bytes are read exactly once. F16/BF16 tensors are
//! stored as-is (two values per word; padded at the very end when the count is odd).

use crate::types::GgmlType;
use half::{bf16, f16};

/// Where a type's 2-byte `d` scale sits inside its block, for the types that are split.
fn split_scale(ty: GgmlType) -> Option<(usize, std::ops::Range<usize>)> {
    // (byte offset of d, byte range of the body)
    match ty {
        GgmlType::Q8_0 => Some((0, 2..34)),
        GgmlType::Q4_0 => Some((0, 2..18)),
        GgmlType::Q5_0 => Some((0, 2..22)),
        GgmlType::Q6K => Some((208, 0..208)),
        _ => None,
    }
}

/// Words of one block's body in the GPU layout (the whole block for unsplit types).
pub fn gpu_body_words(ty: GgmlType) -> usize {
    match split_scale(ty) {
        Some((_, body)) => body.len() / 4,
        None => ty.type_size() / 4,
    }
}

/// Word offset of the f16 scale plane for a split type holding `n_blocks` blocks; 0 otherwise.
pub fn gpu_scale_plane_offset(ty: GgmlType, n_blocks: usize) -> usize {
    if split_scale(ty).is_some() {
        n_blocks * gpu_body_words(ty)
    } else {
        0
    }
}

/// Size in 32-bit words of `n_elements` of `ty` in the GPU layout.
pub fn gpu_words(ty: GgmlType, n_elements: usize) -> usize {
    let (block, size) = ty.block_layout();
    let n_blocks = n_elements / block;
    match split_scale(ty) {
        Some(_) => n_blocks * gpu_body_words(ty) + n_blocks.div_ceil(2),
        None => (n_blocks * size).div_ceil(4),
    }
}

/// Repacks raw ggml bytes (a whole number of blocks) into the GPU layout described above.
pub fn repack_for_gpu(ty: GgmlType, raw: &[u8]) -> Vec<u32> {
    let mut words = Vec::new();
    repack_for_gpu_into(ty, raw, &mut words);
    words
}

/// [`repack_for_gpu`] into `words` (cleared first), so a loop of pieces reuses one allocation.
pub fn repack_for_gpu_into(ty: GgmlType, raw: &[u8], words: &mut Vec<u32>) {
    let size = ty.type_size();
    debug_assert_eq!(raw.len() % size, 0);
    let n_blocks = raw.len() / size;
    words.clear();
    match split_scale(ty) {
        None => {
            words.resize(raw.len().div_ceil(4), 0);
            bytemuck_copy(raw, words);
        }
        Some((d_at, body)) => {
            let body_words = body.len() / 4;
            words.resize(n_blocks * body_words + n_blocks.div_ceil(2), 0);
            let (bodies, scales) = words.split_at_mut(n_blocks * body_words);
            for ((block, out), b) in raw
                .chunks_exact(size)
                .zip(bodies.chunks_exact_mut(body_words))
                .zip(0..)
            {
                for (w, chunk) in out.iter_mut().zip(block[body.clone()].chunks_exact(4)) {
                    *w = u32::from_le_bytes(chunk.try_into().unwrap());
                }
                let d = u16::from_le_bytes([block[d_at], block[d_at + 1]]) as u32;
                scales[b / 2] |= d << (16 * (b % 2));
            }
        }
    }
}

/// Whether `ty`'s GPU layout is its file layout (no scale plane to split off).
pub fn gpu_layout_is_verbatim(ty: GgmlType) -> bool {
    split_scale(ty).is_none()
}

fn bytemuck_copy(raw: &[u8], words: &mut [u32]) {
    for (w, chunk) in words.iter_mut().zip(raw.chunks(4)) {
        let mut b = [0u8; 4];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u32::from_le_bytes(b);
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Scale and min of sub-block `j` of a Q4_K/Q5_K block (6-bit values packed in 12 bytes).
fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    if j < 4 {
        ((q[j] & 63) as f32, (q[j + 4] & 63) as f32)
    } else {
        let d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        let m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (d as f32, m as f32)
    }
}

/// Dequantizes raw ggml bytes of a supported type into f32 values (the CPU reference).
/// Returns `None` for unsupported types.
pub fn dequantize(ty: GgmlType, raw: &[u8]) -> Option<Vec<f32>> {
    let (block, size) = ty.block_layout();
    let mut out = Vec::with_capacity(raw.len() / size * block);
    for b in raw.chunks_exact(size) {
        match ty {
            GgmlType::F32 => out.push(f32::from_le_bytes(b.try_into().unwrap())),
            GgmlType::F16 => out.push(f16_at(b, 0)),
            GgmlType::Bf16 => out.push(bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            GgmlType::Q8_0 => {
                let d = f16_at(b, 0);
                out.extend(b[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
            GgmlType::Q4_0 | GgmlType::Q4_1 => {
                let d = f16_at(b, 0);
                let (m, qs, offset) = if ty == GgmlType::Q4_0 {
                    (0.0, &b[2..18], 8.0)
                } else {
                    (f16_at(b, 2), &b[4..20], 0.0)
                };
                out.extend(qs.iter().map(|&q| ((q & 0xF) as f32 - offset) * d + m));
                out.extend(qs.iter().map(|&q| ((q >> 4) as f32 - offset) * d + m));
            }
            GgmlType::Q5_0 | GgmlType::Q5_1 => {
                let d = f16_at(b, 0);
                let (m, rest, offset) = if ty == GgmlType::Q5_0 {
                    (0.0, &b[2..22], 16.0)
                } else {
                    (f16_at(b, 2), &b[4..24], 0.0)
                };
                let qh = u32::from_le_bytes(rest[0..4].try_into().unwrap());
                let qs = &rest[4..20];
                for (j, &q) in qs.iter().enumerate() {
                    let hi = ((qh >> j) & 1) << 4;
                    out.push((((q & 0xF) as u32 | hi) as f32 - offset) * d + m);
                }
                for (j, &q) in qs.iter().enumerate() {
                    let hi = ((qh >> (j + 16)) & 1) << 4;
                    out.push((((q >> 4) as u32 | hi) as f32 - offset) * d + m);
                }
            }
            GgmlType::Q4K | GgmlType::Q5K => {
                let d = f16_at(b, 0);
                let dmin = f16_at(b, 2);
                let scales = &b[4..16];
                let (qh, qs) = if ty == GgmlType::Q4K {
                    (None, &b[16..144])
                } else {
                    (Some(&b[16..48]), &b[48..176])
                };
                for chunk in 0..4 {
                    let q = &qs[chunk * 32..chunk * 32 + 32];
                    for half in 0..2 {
                        let (sc, mn) = scale_min_k4(chunk * 2 + half, scales);
                        for l in 0..32 {
                            let mut v = if half == 0 { q[l] & 0xF } else { q[l] >> 4 } as u32;
                            if let Some(qh) = qh {
                                v |= (((qh[l] >> (chunk * 2 + half)) & 1) as u32) << 4;
                            }
                            out.push(d * sc * v as f32 - dmin * mn);
                        }
                    }
                }
            }
            GgmlType::Q6K => {
                let d = f16_at(b, 208);
                let mut y = [0f32; 256];
                for half in 0..2 {
                    let ql = &b[half * 64..half * 64 + 64];
                    let qh = &b[128 + half * 32..128 + half * 32 + 32];
                    let sc = &b[192 + half * 8..192 + half * 8 + 8];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        let base = half * 128;
                        y[base + l] = d * (sc[is] as i8) as f32 * q1 as f32;
                        y[base + l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                        y[base + l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                        y[base + l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                    }
                }
                out.extend_from_slice(&y);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_types_move_the_scale_to_a_plane() {
        // Two Q8_0 blocks: d = 1.0 (0x3c00) and 2.0 (0x4000), quants 0..32 and 32..64.
        let mut raw = Vec::new();
        for (d, base) in [(0x3c00u16, 0u8), (0x4000, 32)] {
            raw.extend_from_slice(&d.to_le_bytes());
            raw.extend((0..32).map(|i| base + i));
        }
        let words = repack_for_gpu(GgmlType::Q8_0, &raw);
        assert_eq!(words.len(), gpu_words(GgmlType::Q8_0, 64));
        assert_eq!(words[0], u32::from_le_bytes([0, 1, 2, 3]));
        assert_eq!(words[8], u32::from_le_bytes([32, 33, 34, 35]));
        assert_eq!(gpu_scale_plane_offset(GgmlType::Q8_0, 2), 16);
        assert_eq!(words[16], 0x4000_3c00);
    }

    #[test]
    fn q8_0_dequantizes_by_definition() {
        let mut raw = 0x4000u16.to_le_bytes().to_vec(); // d = 2
        raw.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let v = dequantize(GgmlType::Q8_0, &raw).unwrap();
        assert_eq!(v[0], -32.0);
        assert_eq!(v[31], 30.0);
    }
}
