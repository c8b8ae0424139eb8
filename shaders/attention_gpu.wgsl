// Causal attention over the KV cache on GPUs, tiled: prefill (many queries) and decode (one).
// CPU-emulated adapters take attention_cpu.wgsl.
//
// Bindings:
//   0 params   uniform  AttnParams (attention_common.wgsl, which declares these bindings)
//   1 qkv      storage  f32 [n_tokens, qkv_stride]; query head h of token t at t*qkv_stride + h*head_dim
//   2 k_cache  storage  KvWord [kv_rows, n_head_kv * head_dim / 4], row = position % kv_rows: four
//                       values each (f32, f16 or packed f16: see rope_kv.wgsl)
//   3 v_cache  storage  same layout
//   4 out      storage  f32 [n_tokens, n_head * head_dim]
//   5 partials storage  f32 [n_head, n_splits, head_dim + 2] (split decoding only)
//   6 freq     storage  f32 [n_rot / 2] RoPE frequency divisors (`rotate` only; any buffer without)
//
// With `rotate` set (decoding one token), the token's query and key come unrotated and this kernel
// does rope_kv.wgsl's work, one dispatch fewer per layer: every workgroup rotates its queries
// as it stages them, and the workgroup of each KV head whose key range ends at the new
// position (the last split) rotates the token's key and stores it and the value in the cache
// before reading the cache. No other workgroup reads that position.
//
// A workgroup takes one KV head and up to ROWS query rows that read it: the rows are the
// (token, head) pairs of that head's group, token-major, so a decoded token's GQA heads share
// one workgroup and a prompt's tokens come ROWS / group at a time. Keys come WG at a time, and
// each is read from the cache once for all the rows (attention_cpu.wgsl, one query a workgroup,
// reads it once per query: group x tokens times over in prefill):
//   1. scores: thread j dots key tile+j with every row's query (queries staged in q_tile) and
//      folds each visible score into the row's maximum so far (an atomic max on ordered bits);
//   2. probabilities: every thread keeps the rows' previous maxima (the same values in every
//      thread), writes p = exp(score - new maximum) to p_tile, and thread 0 the rescale
//      factor exp(previous - new) of each row;
//   3. output: thread (row group, d4) rescales, then adds p * V for its rows' dimensions d4
//      (one read of each V value serves SLOTS rows).
// Query row r of token t sees keys 0..=pos0 + t (causal mask), or with a `window` the last
// `window` of them; a row's first tile always holds a visible key (the tiles start at the
// first row's first key, and a workgroup's rows span fewer than WG positions), so its running
// maximum is a real score from then on. Decoding at long
// context splits the keys into ranges of split_len (a multiple of WG) so that many
// workgroups share one query ("flash decoding"): each writes its unnormalized output, maximum
// and sum to `partials`, and attention_combine.wgsl merges them.
// Limits the host keeps: head_dim a multiple of 4, head_dim / 4 <= WG, ROWS <= MAX_ROWS,
// ROWS * head_dim / 4 <= 512 (q_tile), SLOTS = ceil(ROWS / (WG / (head_dim / 4))).

// Threads, and keys per tile (at most 64: p_tile).
override WG: u32 = 64u;
// Query rows per workgroup.
override ROWS: u32 = 16u;
// Output rows per thread.
override SLOTS: u32 = 8u;

@group(0) @binding(6) var<storage, read> freq: array<f32>;

const MAX_ROWS: u32 = 16u;
// WGSL has no infinity literal; exp() of anything minus this is 0.
const NEG_BIG: f32 = -3.0e38;

var<workgroup> q_tile: array<vec4<f32>, 512>;
// [ROWS][WG]: a tile's probabilities.
var<workgroup> p_tile: array<f32, 1024>;
// Per row: the maximum score of the tiles so far, as ordered bits. Zero-initialised, as all
// workgroup memory: below every score's bits, and a row's first tile has a visible key.
var<workgroup> row_max: array<atomic<u32>, 16>;
// Per row: the rescale factor of the current tile; after the last tile, the running maximum.
var<workgroup> row_factor: array<f32, 16>;

// f32 bits to u32s that order as the floats do, for atomicMax.
fn ordered(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn unordered(b: u32) -> f32 {
    return bitcast<f32>(select(~b, b & 0x7fffffffu, (b & 0x80000000u) != 0u));
}

// The first key a query at `pos` sees.
fn window_start(pos: u32) -> u32 {
    return select(0u, pos + 1u - params.window, params.window > 0u && pos + 1u > params.window);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let kvh = wid.x;
    let hd = params.head_dim;
    let hd4 = hd / 4u;
    let group = params.n_head / params.n_head_kv;
    let kv_dim4 = params.n_head_kv * hd4;
    let kv_off4 = kvh * hd4;
    let row0 = wid.y * ROWS;
    let n_rows = min(ROWS, params.n_tokens * group - row0);
    let split = wid.z;
    // Keys [first_key, key_end): from the first row's first visible key up to the last row's
    // position, or this split's range of it.
    var first_key = window_start(params.pos0 + row0 / group);
    var key_end = params.pos0 + (row0 + n_rows - 1u) / group + 1u;
    if (params.split_len > 0u) {
        first_key += split * params.split_len;
        key_end = min(first_key + params.split_len, key_end);
    }

    let rope = params.rotation;
    let rotate = params.rotate == 1u;
    if (rotate) {
        // The new token's key (rotated) and value into the cache, by the workgroup that reads them.
        if (key_end == params.pos0 + 1u) {
            let src = params.n_head * hd + kvh * hd;
            let dst = (params.pos0 % params.kv_rows) * kv_dim4 + kv_off4;
            for (var w = lid; w < hd4; w += WG) {
                k_cache[dst + w] = kv_word(rope_rotated4(rope, src, 4u * w, params.pos0));
                let v = src + params.n_head_kv * hd + 4u * w;
                v_cache[dst + w] = kv_word(vec4<f32>(qkv[v], qkv[v + 1u], qkv[v + 2u], qkv[v + 3u]));
            }
        }
        storageBarrier();
    }
    for (var i = lid; i < ROWS * hd4; i += WG) {
        let r = i / hd4;
        var q = vec4<f32>(0.0);
        if (r < n_rows) {
            let f = row0 + r;
            let head = (f / group) * params.qkv_stride + (kvh * group + f % group) * hd;
            let d = 4u * (i % hd4);
            if (rotate) {
                q = rope_rotated4(rope, head, d, params.pos0 + f / group);
            } else {
                q = vec4<f32>(qkv[head + d], qkv[head + d + 1u], qkv[head + d + 2u], qkv[head + d + 3u]);
            }
            q *= params.scale;
        }
        q_tile[i] = q;
    }
    workgroupBarrier();

    // This thread's output: dimensions 4*d4.. of rows rg + row_groups * i, i < SLOTS.
    let row_groups = WG / hd4;
    let d4 = lid % hd4;
    let rg = lid / hd4;
    let writes = rg < row_groups;

    // Per row: the maximum score before this tile (row_max before step 1), and the keys the
    // row sees, [row_start, row_end) (none past the last row).
    var running: array<f32, MAX_ROWS>;
    var row_start: array<u32, MAX_ROWS>;
    var row_end: array<u32, MAX_ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        running[r] = NEG_BIG;
        if (r < n_rows) {
            let pos = params.pos0 + (row0 + r) / group;
            row_start[r] = window_start(pos);
            row_end[r] = min(key_end, pos + 1u);
        }
    }
    var acc: array<vec4<f32>, MAX_ROWS>;
    var sums: array<f32, MAX_ROWS>;
    for (var tile = first_key; tile < key_end; tile += WG) {
        // 1. Scores of key `tile + lid` against every row.
        let key = tile + lid;
        var s: array<f32, MAX_ROWS>;
        if (key < key_end) {
            let kb = (key % params.kv_rows) * kv_dim4 + kv_off4;
            for (var d = 0u; d < hd4; d++) {
                let k = kv4(k_cache[kb + d]);
                for (var r = 0u; r < ROWS; r++) {
                    s[r] += dot(q_tile[r * hd4 + d], k);
                }
            }
        }
        for (var r = 0u; r < ROWS; r++) {
            if (key >= row_start[r] && key < row_end[r]) {
                atomicMax(&row_max[r], ordered(s[r]));
            } else {
                s[r] = NEG_BIG;
            }
        }
        workgroupBarrier();

        // 2. Probabilities, and each row's rescale factor.
        for (var r = 0u; r < ROWS; r++) {
            let new_max = unordered(atomicLoad(&row_max[r]));
            p_tile[r * WG + lid] = select(0.0, exp(s[r] - new_max), s[r] > NEG_BIG);
            if (lid == 0u) {
                row_factor[r] = exp(running[r] - new_max);
            }
            running[r] = new_max;
        }
        workgroupBarrier();

        // 3. Output += p * V.
        if (writes) {
            for (var i = 0u; i < SLOTS; i++) {
                let r = min(rg + row_groups * i, ROWS - 1u);
                acc[i] *= row_factor[r];
                sums[i] *= row_factor[r];
            }
            let n_in_tile = min(WG, key_end - tile);
            // The cache row of key tile + j, stepped (a ring wraps to row 0).
            var row = tile % params.kv_rows;
            for (var j = 0u; j < n_in_tile; j++) {
                let v = kv4(v_cache[row * kv_dim4 + kv_off4 + d4]);
                row = select(row + 1u, 0u, row + 1u == params.kv_rows);
                for (var i = 0u; i < SLOTS; i++) {
                    let p = p_tile[min(rg + row_groups * i, ROWS - 1u) * WG + j];
                    acc[i] += p * v;
                    sums[i] += p;
                }
            }
        }
        workgroupBarrier();
    }

    if (lid == 0u) {
        for (var r = 0u; r < ROWS; r++) {
            row_factor[r] = running[r];
        }
    }
    workgroupBarrier();
    if (!writes) {
        return;
    }
    let split_out = params.split_len > 0u;
    for (var i = 0u; i < SLOTS; i++) {
        let r = rg + row_groups * i;
        if (r >= n_rows) {
            break;
        }
        let f = row0 + r;
        let h = kvh * group + f % group;
        if (split_out) {
            let base = (h * params.n_splits + split) * (hd + 2u);
            let o = base + 4u * d4;
            partials[o] = acc[i].x;
            partials[o + 1u] = acc[i].y;
            partials[o + 2u] = acc[i].z;
            partials[o + 3u] = acc[i].w;
            if (d4 == 0u) {
                partials[base + hd] = row_factor[r];
                partials[base + hd + 1u] = sums[i];
            }
        } else {
            let o = (f / group) * params.n_head * hd + h * hd + 4u * d4;
            let v = acc[i] / sums[i];
            out[o] = v.x;
            out[o + 1u] = v.y;
            out[o + 2u] = v.z;
            out[o + 3u] = v.w;
        }
    }
}
