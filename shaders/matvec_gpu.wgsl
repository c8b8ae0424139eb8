// Matrix × vector on GPUs (decode): y[out_offset + r] (+)= dot(W[r, :], x[x_row, :]); or,
// with `glu` > 0, the gated activation of a stacked [gate | up] matrix whose up rows start at
// row `glu`: y[out_offset + r] = act(W[r, :] · x) * (W[glu + r, :] · x) for r < n_rows, act
// SiLU or with `gelu` GELU (gate_activation.wgsl, prepended).
// With NORMED, x is first RMS-normalised: x / sqrt(mean(x²) + eps) * gain (RMSNorm fused in,
// one dispatch fewer; the norm's 1/rms is a factor of every product, applied at the end).
//
// Bindings:
//   0 params   uniform  GpuMatrixParams (below)
//   1 weights  storage  W in the GPU layout of its format (weights/*.wgsl)
//   2 x        storage  activations, row-major [tokens, k] f32 read as vec4
//   3 y        storage  output f32; with `accumulate` the product is added (fused residual)
//   4 weights4 storage  the same buffer as `weights`, read 16 bytes at a time
//   5 gain     storage  the RMSNorm weights [k] with NORMED (any buffer without)
// A workgroup of 64 threads holds 64 / THREADS_PER_ROW groups of THREADS_PER_ROW lanes, each
// group four consecutive output rows (and their up rows with glu). A row's quantization blocks
// are dealt out to the lanes in turn, so neighbouring lanes read neighbouring blocks (wide,
// coalesced loads); each lane reads a block's activations once for all of the group's rows
// (the format's x_block and block_dot4, shaders/block_dot/: for the K-quants their 64- or
// 32-value parts, shaders/block_dot/gpu/, as a whole super-block's activations would not fit
// in registers). One barrier, then four lanes of each group add up the lanes' sums. NORMED:
// the workgroup's 64 threads also sum x² over the row between them (a read of x the main loop
// finds in cache), added up by the same four lanes.
// Workgroups past 65535 wrap into the y dimension of the dispatch.

struct GpuMatrixParams {
    k: u32,
    scale_offset: u32,
    n_rows: u32,
    out_offset: u32,
    accumulate: u32,
    x_row: u32,
    glu: u32,
    eps: f32,
    gelu: u32,
}

@group(0) @binding(0) var<uniform> params: GpuMatrixParams;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> weights4: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> gain: array<vec4<f32>>;

const WG: u32 = 64u;
/// Lanes per group of rows: a power of two from 4 to 64 (kernels/choice.rs picks it per adapter).
override THREADS_PER_ROW: u32 = 16u;
/// Each lane's sums of its group's four rows, then of their up rows.
var<workgroup> partial: array<vec4<f32>, 128>;
/// Whether x is RMS-normalised first (the fused RMSNorm).
override NORMED: bool = false;
/// Each thread's part of Σx² (NORMED).
var<workgroup> sum_squares: array<f32, 64>;

fn x_at(i: u32) -> vec4<f32> {
    if (NORMED) {
        return x[i] * gain[i - params.x_row * (params.k / 4u)];
    }
    return x[i];
}

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
    if (NORMED) {
        var squares = 0.0;
        for (var i = lid; i < params.k / 4u; i += WG) {
            let v = x[x0 + i];
            squares += dot(v, v);
        }
        sum_squares[lid] = squares;
    }
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
        var scale = 1.0;
        if (NORMED) {
            var squares = 0.0;
            for (var i = 0u; i < WG; i++) {
                squares += sum_squares[i];
            }
            scale = inverseSqrt(squares / f32(params.k) + params.eps);
        }
        var sum = 0.0;
        for (var i = 0u; i < THREADS_PER_ROW; i++) {
            sum += partial[lanes + i][lane];
        }
        sum *= scale;
        let o = params.out_offset + first + lane;
        if (params.glu != 0u) {
            var sum_up = 0.0;
            for (var i = 0u; i < THREADS_PER_ROW; i++) {
                sum_up += partial[WG + lanes + i][lane];
            }
            y[o] = gate_activation(sum, params.gelu) * sum_up * scale;
        } else {
            y[o] = select(0.0, y[o], params.accumulate == 1u) + sum;
        }
    }
}
