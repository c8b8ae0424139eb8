// The rotary embedding's parameters, shared by rope_kv.wgsl and the attention kernels'
// parameter structs (their twin in Rust: kernels/params.rs). The first n_rot dimensions of a
// head rotate, paired NeoX-style (i, i + n_rot/2) where neox is 1, else (2i, 2i+1); the
// angles' base is 2^log2_base; see rope_common.wgsl for the rotation itself.
// In a uniform block a struct member starts at a multiple of 16 bytes and the next member 16
// bytes on at least: the structs holding a Rope put it first, sized 32 (`@size(32)`).

struct Rope {
    n_rot: u32,
    neox: u32,
    log2_base: f32,
    freq_scale: f32,
    attn_factor: f32,
}
