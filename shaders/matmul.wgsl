// Tiled matrix × matrix for prefill: Y[m, out_offset + n] (+)= sum_k X[x_row + m, k] W[n, k].
//
// Bindings:
//   0 params   uniform  MatrixParams (below; the same struct as matvec.wgsl)
//   1 weights  storage  W, n_rows × k values in the GPU layout of its format (weights/*.wgsl)
//   2 x        storage  activations, row-major [tokens, k] f32 read as vec4
//   3 y        storage  row-major [n_tokens, out_stride] f32; `accumulate` adds (fused residual)
// Each 16×16 workgroup computes a 32-token × 32-row tile, 2×2 outputs per thread. For each
// 32-wide slice of k it dequantizes the weight tile once into workgroup memory (128 threads,
// one load_w8 each) and stages the activation tile beside it.

struct MatrixParams {
    k: u32,
    scale_offset: u32,
    n_rows: u32,
    n_tokens: u32,
    out_stride: u32,
    out_offset: u32,
    accumulate: u32,
    x_row: u32,
}

@group(0) @binding(0) var<uniform> params: MatrixParams;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const TILE: u32 = 32u;
// Rows padded by one to spread workgroup-memory banks.
var<workgroup> w_tile: array<array<f32, 33>, 32>;
var<workgroup> x_tile: array<array<f32, 33>, 32>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n0 = wid.x * TILE;
    let m0 = wid.y * TILE;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var k0 = 0u; k0 < params.k; k0 += TILE) {
        if (lid < 128u) {
            let r = lid / 4u;
            let g = (lid % 4u) * 8u;
            var w = W8(vec4<f32>(0.0), vec4<f32>(0.0));
            if (n0 + r < params.n_rows) {
                w = load_w8(n0 + r, k0 + g);
            }
            for (var i = 0u; i < 4u; i++) {
                w_tile[r][g + i] = w.lo[i];
                w_tile[r][g + 4u + i] = w.hi[i];
            }
        }
        {
            let m = lid / 8u;
            let kk = (lid % 8u) * 4u;
            var v = vec4<f32>(0.0);
            if (m0 + m < params.n_tokens) {
                v = x[((params.x_row + m0 + m) * params.k + k0 + kk) / 4u];
            }
            for (var i = 0u; i < 4u; i++) {
                x_tile[m][kk + i] = v[i];
            }
        }
        workgroupBarrier();
        let tm = lid3.y * 2u;
        let tn = lid3.x * 2u;
        for (var kk = 0u; kk < TILE; kk++) {
            let a0 = x_tile[tm][kk];
            let a1 = x_tile[tm + 1u][kk];
            let b0 = w_tile[tn][kk];
            let b1 = w_tile[tn + 1u][kk];
            acc[0] += a0 * b0;
            acc[1] += a0 * b1;
            acc[2] += a1 * b0;
            acc[3] += a1 * b1;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid3.y * 2u + i / 2u;
        let n = n0 + lid3.x * 2u + i % 2u;
        if (m < params.n_tokens && n < params.n_rows) {
            let o = m * params.out_stride + params.out_offset + n;
            y[o] = select(0.0, y[o], params.accumulate == 1u) + acc[i];
        }
    }
}
