// Matrix × vector on GPUs (decode): y[out_offset + r] (+)= dot(W[r, :], x[x_row, :]); or,
// with `glu` > 0, the gated activation of a stacked [gate | up] matrix whose up rows start at
// row `glu`: y[out_offset + r] = silu(W[r, :] · x) * (W[glu + r, :] · x) for r < n_rows.
//
// Bindings:
//   0 params   uniform  GpuMatrixParams (below)
//   1 weights  storage  W in the GPU layout of its format (weights/*.wgsl)
//   2 x        storage  activations, row-major [tokens, k] f32 read as vec4
//   3 y        storage  output f32; with `accumulate` the product is added (fused residual)
//   4 weights4 storage  the same buffer as `weights`, read 16 bytes at a time
// A workgroup of 64 threads holds 64 / THREADS_PER_ROW groups of THREADS_PER_ROW lanes, each
// group four consecutive output rows (and their up rows with glu). A row's quantization blocks
// are dealt out to the lanes in turn, so neighbouring lanes read neighbouring blocks (wide,
// coalesced loads); each lane reads a block's activations once for all of the group's rows
// (the format's x_block and block_dot4, shaders/block_dot/: for the K-quants their 64- or
// 32-value parts, shaders/block_dot/gpu/, as a whole super-block's activations would not fit
// in registers). One barrier, then four lanes of each group add up the lanes' sums.
// Workgroups past 65535 wrap into the y dimension of the dispatch.

struct GpuMatrixParams {
    k: u32,
    scale_offset: u32,
    n_rows: u32,
    out_offset: u32,
    accumulate: u32,
    x_row: u32,
    glu: u32,
}

@group(0) @binding(0) var<uniform> params: GpuMatrixParams;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> weights4: array<vec4<u32>>;

const WG: u32 = 64u;
/// Lanes per group of rows: a power of two from 4 to 64 (kernels.rs picks it per adapter).
override THREADS_PER_ROW: u32 = 16u;
/// Each lane's sums of its group's four rows, then of their up rows.
var<workgroup> partial: array<vec4<f32>, 128>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    // Formats read through `weights`, `weights4` or both; both stay bound (one layout).
    _ = weights[0];
    _ = weights4[0];
    let lane = lid % THREADS_PER_ROW;
    let group = lid / THREADS_PER_ROW;
    let first = ((wid.x + wid.y * groups.x) * (WG / THREADS_PER_ROW) + group) * 4u;
    // Past the last row a group repeats it: the same work, never written.
    let rows = min(vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.n_rows - 1u));
    let x0 = params.x_row * (params.k / 4u);
    let n_blocks = params.k / BLOCK_VALUES;
    var acc = vec4<f32>(0.0);
    var up = vec4<f32>(0.0);
    for (var b = lane; b < n_blocks; b += THREADS_PER_ROW) {
        let xb = x_block(x0 + b * (BLOCK_VALUES / 4u));
        acc += block_dot4(rows, b, xb);
        if (params.glu != 0u) {
            up += block_dot4(rows + params.glu, b, xb);
        }
    }
    partial[lid] = acc;
    if (params.glu != 0u) {
        partial[WG + lid] = up;
    }
    workgroupBarrier();
    if (lane < 4u && first + lane < params.n_rows) {
        let lanes = group * THREADS_PER_ROW;
        var sum = 0.0;
        for (var i = 0u; i < THREADS_PER_ROW; i++) {
            sum += partial[lanes + i][lane];
        }
        let o = params.out_offset + first + lane;
        if (params.glu != 0u) {
            var sum_up = 0.0;
            for (var i = 0u; i < THREADS_PER_ROW; i++) {
                sum_up += partial[WG + lanes + i][lane];
            }
            y[o] = sum / (1.0 + exp(-sum)) * sum_up;
        } else {
            y[o] = select(0.0, y[o], params.accumulate == 1u) + sum;
        }
    }
}
