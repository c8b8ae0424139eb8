// Matrix × vectors on CPU-emulated adapters (lavapipe, SwiftShader), decode and prefill:
// y[t * out_stride + out_offset + r] (+)= dot(W[r, k_begin .. k_begin + k_len], x_t) for each
// token t < n_tokens of the window; or, with `glu` > 0 (n_rows = 2 glu, one k slice), the
// gated activation of a stacked [gate | up] matrix: y[t * out_stride + out_offset + r] =
// act(W[r, :] · x_t) * (W[glu + r, :] · x_t) for r < glu, act SiLU or with `gelu` GELU
// (gate_activation.wgsl, prepended).
//
// Bindings:
//   0 params   uniform  CpuMatrixParams (below)
//   1 weights  storage  W, n_rows × k values in the GPU layout of its format (weights/*.wgsl)
//   2 x        uniform  a 64 KiB window of the activations: token t's values k_begin.. start
//                       at vec4 t * k / 4 (the host picks tokens and k slices that fit)
//   3 y        storage  output f32; with `accumulate` the product is added (fused residual)
//   4 weights4 storage  the same buffer as `weights`, read 16 bytes at a time where a
//                       format's blocks are 16-byte aligned
// Each thread computes ROWS_PER_THREAD rows (8 or 16) spread evenly over the matrix (with
// glu, the first half gate rows and the second half their up rows), one whole quantization
// block per step: it reads the block's activations once (the format's `x_block`,
// shaders/block_dot/*.wgsl) and multiplies them into groups of four rows (`block_dot4`).
// Why, per driver: lavapipe turns every storage-buffer read into a per-lane loop, while a
// uniform-buffer read at an address all threads share is one scalar load; so the
// activations come from a uniform buffer. SwiftShader gathers every 32-bit value of a dynamic
// address lane by lane (a branch each) and runs loops as written: the fewer values read per
// weight, the faster, hence 8 or 16 rows per activation read, whole blocks per step, the
// block's Σx factored out of its offset term, and hand-unrolled block code. No barriers:
// both pay dearly for them.
// Prefill takes one token at a time too: sharing each weight word's load and unpacking among
// tokens measured no faster on SwiftShader, whose time goes to the instructions of its per-lane
// gathers and spills, not to memory (docs/perf-notes.md).

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
    glu: u32,
    gelu: u32,
}

@group(0) @binding(0) var<uniform> params: CpuMatrixParams;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<uniform> x: array<vec4<f32>, 4096>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> weights4: array<vec4<u32>>;

const WG: u32 = 16u;
/// Rows per thread, 8 or 16 (two or four block_dot4 groups): 16 where a block's activations
/// are few enough to leave registers for four groups (kernels/choice.rs: cpu_rows_per_thread).
override ROWS_PER_THREAD: u32 = 8u;

fn x_at(i: u32) -> vec4<f32> {
    return x[i];
}

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
    // Rows row + i * stride; past the last row a thread repeats it: the same work, never written.
    let last = vec4<u32>(params.n_rows - 1u);
    let rows0 = vec4<u32>(0u, 1u, 2u, 3u) * stride + row;
    let rows = array<vec4<u32>, 4>(min(rows0, last), min(rows0 + 4u * stride, last), min(rows0 + 8u * stride, last), min(rows0 + 12u * stride, last));
    let first_block = params.k_begin / BLOCK_VALUES;
    let n_blocks = params.k_len / BLOCK_VALUES;
    for (var t = 0u; t < params.n_tokens; t++) {
        let x0 = t * (params.k / 4u);
        var acc = array<vec4<f32>, 4>();
        for (var b = 0u; b < n_blocks; b++) {
            let xb = x_block(x0 + b * (BLOCK_VALUES / 4u));
            acc[0] += block_dot4(rows[0], first_block + b, xb);
            acc[1] += block_dot4(rows[1], first_block + b, xb);
            if (ROWS_PER_THREAD == 16u) {
                acc[2] += block_dot4(rows[2], first_block + b, xb);
                acc[3] += block_dot4(rows[3], first_block + b, xb);
            }
        }
        if (params.glu != 0u) {
            for (var r = 0u; r < ROWS_PER_THREAD / 2u; r++) {
                let g = acc[r / 4u][r % 4u];
                let u = acc[(r + ROWS_PER_THREAD / 2u) / 4u][r % 4u];
                y[t * params.out_stride + params.out_offset + row + r * stride] = gate_activation(g, params.gelu) * u;
            }
            continue;
        }
        for (var r = 0u; r < ROWS_PER_THREAD; r++) {
            if (row + r * stride < params.n_rows) {
                let o = t * params.out_stride + params.out_offset + row + r * stride;
                y[o] = select(0.0, y[o], params.accumulate == 1u) + acc[r / 4u][r % 4u];
            }
        }
    }
}
