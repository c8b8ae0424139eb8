// Matrix × vectors on CPU-emulated adapters (lavapipe, SwiftShader), decode and prefill:
// y[t * out_stride + out_offset + r] (+)= dot(W[r, k_begin .. k_begin + k_len], x_t) for each
// token t < n_tokens of the window.
//
// Bindings:
//   0 params   uniform  CpuMatrixParams (below)
//   1 weights  storage  W, n_rows × k values in the GPU layout of its format (weights/*.wgsl)
//   2 x        uniform  a 64 KiB window of the activations: token t's values k_begin.. start
//                       at vec4 t * k / 4 (the host picks tokens and k slices that fit)
//   3 y        storage  output f32; with `accumulate` the product is added (fused residual)
//   4 weights4 storage  the same buffer as `weights`, read 16 bytes at a time where a
//                       format's blocks are 16-byte aligned
// One thread per row (or four: ROWS_PER_THREAD), whole quantization blocks per step
// (shaders/block_dot/*.wgsl). Why: lavapipe turns every storage-buffer read into a per-lane
// loop, while a uniform-buffer read at an address all threads share is one scalar load; so
// activations come from a uniform buffer at shared addresses and each weight word is read once
// per token. SwiftShader gathers every dynamic address lane by lane and runs loops as written,
// hence the hand-unrolled block code and 16-byte reads. No barriers: both pay dearly for them.

struct CpuMatrixParams {
    k: u32,
    scale_offset: u32,
    n_rows: u32,
    n_tokens: u32,
    out_stride: u32,
    out_offset: u32,
    accumulate: u32,
    k_begin: u32,
    k_len: u32,
}

@group(0) @binding(0) var<uniform> params: CpuMatrixParams;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<uniform> x: array<vec4<f32>, 4096>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> weights4: array<vec4<u32>>;

/// Values i*4 .. i*4+4 of the window; called by block_dot.
fn x4(i: u32) -> vec4<f32> {
    return x[i];
}

const WG: u32 = 64u;
/// Rows per thread: 1 or 4. With 4, thread i takes rows i, i + q, i + 2q, i + 3q (q = a
/// quarter of the rows) and each activation read serves all four: 1.3-2.5x faster per
/// weight on lavapipe and SwiftShader (per format).
override ROWS_PER_THREAD: u32 = 1u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    // Formats read through `weights`, `weights4` or both; both stay bound (one layout).
    _ = weights[0];
    _ = weights4[0];
    let stride = (params.n_rows + ROWS_PER_THREAD - 1u) / ROWS_PER_THREAD;
    let row = (wid.x + wid.y * groups.x) * WG + lid;
    if (row >= stride) {
        return;
    }
    // Past the last row a thread repeats it: the same work, never written.
    let last = params.n_rows - 1u;
    let rows = min(vec4<u32>(row, row + stride, row + 2u * stride, row + 3u * stride), vec4<u32>(last));
    let first_block = params.k_begin / BLOCK_VALUES;
    let n_blocks = params.k_len / BLOCK_VALUES;
    for (var t = 0u; t < params.n_tokens; t++) {
        let x0 = t * (params.k / 4u);
        var acc = vec4<f32>(0.0);
        for (var b = 0u; b < n_blocks; b++) {
            let xi = x0 + b * (BLOCK_VALUES / 4u);
            let block = first_block + b;
            if (ROWS_PER_THREAD == 4u) {
                acc += vec4<f32>(block_dot(rows.x, block, xi), block_dot(rows.y, block, xi), block_dot(rows.z, block, xi), block_dot(rows.w, block, xi));
            } else {
                acc.x += block_dot(row, block, xi);
            }
        }
        for (var r = 0u; r < ROWS_PER_THREAD; r++) {
            if (row + r * stride < params.n_rows) {
                let o = t * params.out_stride + params.out_offset + row + r * stride;
                y[o] = select(0.0, y[o], params.accumulate == 1u) + acc[r];
            }
        }
    }
}
