// One round of top-k candidate selection: each workgroup sorts a chunk of CHUNK (value,
// index) pairs in workgroup memory (bitonic sort, descending by value, ties to the lower
// index) and writes its best K. Repeated on its own output until one chunk remains, it
// reduces 200k logits to K candidates in three rounds, so sampling reads back K pairs.
//
// Bindings:
//   0 params  uniform  TopKParams (below)
//   1 values  storage  f32 [n] (round 1: the logits; later rounds: the previous output)
//   2 indices storage  u32 [n] token ids of `values` (ignored in round 1, where ids are positions)
//   3 out_v   storage  f32 [n_chunks * K]
//   4 out_i   storage  u32 [n_chunks * K]
// Dispatch (n_chunks = ceil(n / CHUNK)). Missing entries sort last as (-3e38, 0xffffffff).

struct TopKParams {
    n: u32,
    first_round: u32,
}

@group(0) @binding(0) var<uniform> params: TopKParams;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> out_v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_i: array<u32>;

const CHUNK: u32 = 2048u;
const K: u32 = 128u;
const WG: u32 = 256u;
var<workgroup> sv: array<f32, CHUNK>;
var<workgroup> si: array<u32, CHUNK>;

// Whether (va, ia) should come after (vb, ib) in descending order.
fn after(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
    return va < vb || (va == vb && ia > ib);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = wid.x * CHUNK;
    for (var j = lid; j < CHUNK; j += WG) {
        let g = base + j;
        if (g < params.n) {
            sv[j] = values[g];
            si[j] = select(indices[g], g, params.first_round == 1u);
        } else {
            sv[j] = -3.0e38;
            si[j] = 0xffffffffu;
        }
    }
    workgroupBarrier();
    for (var size = 2u; size <= CHUNK; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            for (var t = lid; t < CHUNK / 2u; t += WG) {
                // The t-th compare-exchange pair of this step.
                let a = 2u * stride * (t / stride) + t % stride;
                let b = a + stride;
                let descending = (a & size) == 0u;
                if (after(sv[a], si[a], sv[b], si[b]) == descending) {
                    let v = sv[a];
                    sv[a] = sv[b];
                    sv[b] = v;
                    let i = si[a];
                    si[a] = si[b];
                    si[b] = i;
                }
            }
            workgroupBarrier();
        }
    }
    for (var j = lid; j < K; j += WG) {
        out_v[wid.x * K + j] = sv[j];
        out_i[wid.x * K + j] = si[j];
    }
}
