// The parameters of the general matrix kernels, matvec.wgsl and matmul.wgsl (their twin in
// Rust: kernels/params.rs). y[t * out_stride + out_offset + r] (+)= W[r, :] · x[x_row + t, :]
// for n_rows rows of k values and n_tokens tokens; the weights' scale plane (formats that keep
// one) starts at word scale_offset; with `accumulate` the product is added to y; eps is the
// fused RMSNorm's (matmul.wgsl with NORMED).

struct MatrixParams {
    k: u32,
    scale_offset: u32,
    n_rows: u32,
    n_tokens: u32,
    out_stride: u32,
    out_offset: u32,
    accumulate: u32,
    x_row: u32,
    eps: f32,
}
