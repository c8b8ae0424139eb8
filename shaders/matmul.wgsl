// Tiled matrix × matrix for prefill on GPUs: Y[m, out_offset + n] (+)= sum_k X[x_row + m, k] W[n, k].
// With NORMED, each row of X is first RMS-normalised: X[m] / sqrt(mean(X[m]²) + eps) * gain
// (RMSNorm fused in: the 1/rms of a token is a factor of its outputs, applied at the end).
//
// Bindings:
//   0 params   uniform  MatrixParams (matrix_params.wgsl)
//   1 weights  storage  W, n_rows × k values in the GPU layout of its format (weights/*.wgsl)
//   2 x        storage  activations, row-major [tokens, k] f32 read as vec4
//   3 y        storage  row-major [n_tokens, out_stride] f32; `accumulate` adds (fused residual)
//   4 gain     storage  the RMSNorm weights [k] with NORMED (any buffer without)
// A workgroup of 256 threads computes a tile of 64 tokens × 64 weight rows, 4 × 4 outputs per
// thread. For each 32-wide slice of k every thread dequantizes 8 weights once (one load_w8)
// and stages 8 activations, both transposed into workgroup memory as vec4 along the tile's
// rows and tokens; then each of the slice's 32 steps reads one vec4 of tokens and one of rows
// and does 16 multiply-adds. Each weight is dequantized once per 64 tokens. NORMED: the four
// threads staging a token see all of its k values between them, so they sum its x² as they
// stage (scaling by gain), and add the four sums up through workgroup memory at the end.

@group(0) @binding(0) var<uniform> params: MatrixParams;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> gain: array<vec4<f32>>;

/// Whether X is RMS-normalised first (the fused RMSNorm).
override NORMED: bool = false;

const TILE: u32 = 64u;
const TILE_K: u32 = 32u;
// [k][rows / 4] and [k][tokens / 4]: 2 × 8 KiB.
var<workgroup> w_tile: array<vec4<f32>, 512>;
var<workgroup> x_tile: array<vec4<f32>, 512>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n0 = wid.x * TILE;
    let m0 = wid.y * TILE;
    // This thread's outputs: tokens m0 + 4 ty .. + 4, rows n0 + 4 tx .. + 4.
    let tx = lid % 16u;
    let ty = lid / 16u;
    // What it stages: 8 weights of row lid / 4 and 8 activations of token lid / 4.
    let r = lid / 4u;
    let g = (lid % 4u) * 8u;
    var acc = array<vec4<f32>, 4>();
    // Σx² of the staged token's values this thread stages (NORMED).
    var squares = 0.0;
    for (var k0 = 0u; k0 < params.k; k0 += TILE_K) {
        var w = W8(vec4<f32>(0.0), vec4<f32>(0.0));
        if (n0 + r < params.n_rows && k0 + g < params.k) {
            w = load_w8(n0 + r, k0 + g);
        }
        var lo = vec4<f32>(0.0);
        var hi = vec4<f32>(0.0);
        if (m0 + r < params.n_tokens && k0 + g < params.k) {
            let xi = ((params.x_row + m0 + r) * params.k + k0 + g) / 4u;
            lo = x[xi];
            hi = x[xi + 1u];
            if (NORMED) {
                squares += dot(lo, lo) + dot(hi, hi);
                lo *= gain[(k0 + g) / 4u];
                hi *= gain[(k0 + g) / 4u + 1u];
            }
        }
        for (var i = 0u; i < 4u; i++) {
            w_tile[(g + i) * 16u + r / 4u][r % 4u] = w.lo[i];
            w_tile[(g + 4u + i) * 16u + r / 4u][r % 4u] = w.hi[i];
            x_tile[(g + i) * 16u + r / 4u][r % 4u] = lo[i];
            x_tile[(g + 4u + i) * 16u + r / 4u][r % 4u] = hi[i];
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let a = x_tile[kk * 16u + ty];
            let b = w_tile[kk * 16u + tx];
            acc[0] += a.x * b;
            acc[1] += a.y * b;
            acc[2] += a.z * b;
            acc[3] += a.w * b;
        }
        workgroupBarrier();
    }
    var scale = vec4<f32>(1.0);
    if (NORMED) {
        // Staging thread lid held token lid / 4's part lid % 4.
        x_tile[lid].x = squares;
        workgroupBarrier();
        for (var i = 0u; i < 4u; i++) {
            let t = 4u * (4u * ty + i);
            let sum = x_tile[t].x + x_tile[t + 1u].x + x_tile[t + 2u].x + x_tile[t + 3u].x;
            scale[i] = inverseSqrt(sum / f32(params.k) + params.eps);
        }
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + 4u * ty + i;
        if (m >= params.n_tokens) {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + 4u * tx + j;
            if (n < params.n_rows) {
                let o = m * params.out_stride + params.out_offset + n;
                y[o] = select(0.0, y[o], params.accumulate == 1u) + acc[i][j] * scale[i];
            }
        }
    }
}
