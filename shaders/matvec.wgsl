// The general matrix × vector kernel, for what the block-wise ones (matvec_gpu.wgsl,
// matvec_cpu.wgsl) cannot take: rows that are no whole number of blocks, inputs without a
// uniform window on CPU-emulated adapters, and there a matrix × a block of vectors for
// prefill: y[t * out_stride + out_offset + r] (+)= dot(W[r, :], x[x_row + t, :]).
//
// Bindings:
//   0 params   uniform  MatrixParams (matrix_params.wgsl)
//   1 weights  storage  W, n_rows × k values in the GPU layout of its format (weights/*.wgsl)
//   2 x        storage  input activations, row-major [tokens, k] f32 read as vec4
//   3 y        storage  output f32; with `accumulate` the product is added (fused residual)
// A workgroup of 64 threads covers 64 / THREADS_PER_ROW rows; a row's threads stride over it
// 8 values at a time and reduce in workgroup memory. THREADS_PER_ROW is set per adapter: many
// per row on GPUs (neighbouring threads read neighbouring bytes), one per row on CPU-emulated
// adapters (lavapipe, SwiftShader), where every barrier is a costly loop split and SIMD lanes
// work best on separate rows. Workgroups past 65535 wrap into the y dimension of the dispatch.
// TOKENS > 1 (prefill on those adapters) multiplies each dequantized weight into TOKENS
// tokens, workgroup z covering tokens [z * TOKENS, (z + 1) * TOKENS): weights are read once per
// block, with no barrier at all, where the tiled matmul would stall on its barriers.

@group(0) @binding(0) var<uniform> params: MatrixParams;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const WG: u32 = 64u;
/// A power of two dividing 64.
override THREADS_PER_ROW: u32 = 64u;
/// Tokens per workgroup, at most MAX_TOKENS.
override TOKENS: u32 = 1u;
const MAX_TOKENS: u32 = 16u;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let lane = lid % THREADS_PER_ROW;
    let row = (wid.x + wid.y * groups.x) * (WG / THREADS_PER_ROW) + lid / THREADS_PER_ROW;
    let t0 = wid.z * TOKENS;
    let x_width = params.k / 4u;
    var acc: array<f32, MAX_TOKENS>;
    if (row < params.n_rows) {
        for (var k = lane * 8u; k < params.k; k += THREADS_PER_ROW * 8u) {
            let w = load_w8(row, k);
            for (var t = 0u; t < TOKENS; t++) {
                // Past the last token the block repeats it: the same work, never written.
                let xi = (params.x_row + min(t0 + t, params.n_tokens - 1u)) * x_width + k / 4u;
                acc[t] += dot(w.lo, x[xi]) + dot(w.hi, x[xi + 1u]);
            }
        }
    }
    for (var t = 0u; t < TOKENS; t++) {
        var sum = acc[t];
        if (THREADS_PER_ROW > 1u) {
            partial[lid] = sum;
            workgroupBarrier();
            for (var s = THREADS_PER_ROW / 2u; s > 0u; s >>= 1u) {
                if (lane < s) {
                    partial[lid] += partial[lid + s];
                }
                workgroupBarrier();
            }
            // Each thread reads back only its own slot, which the next token's write is the
            // first to touch again: no barrier needed here.
            sum = partial[lid];
        }
        if (lane == 0u && row < params.n_rows && t0 + t < params.n_tokens) {
            let o = (t0 + t) * params.out_stride + params.out_offset + row;
            y[o] = select(0.0, y[o], params.accumulate == 1u) + sum;
        }
    }
}
