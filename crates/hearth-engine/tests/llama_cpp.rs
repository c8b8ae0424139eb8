//! Hearth against llama.cpp: teacher-forced logits at every position and greedy
//! continuations, for tiny random-weight Phi-3 models of every supported tensor type
//! (fixtures written by `scripts/make-fixtures.py`, answers recorded from llama.cpp).

use hearth_engine::{AdapterKind, Gpu, KvFormat, MemoryPlan, Model, Session, decode_greedy};
use hearth_gguf::{SliceSource, read_header};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Loads with the adapter's default KV cache (f16: native where it has shader-f16, else packed).
async fn load(file: &str) -> Arc<Model> {
    load_with(file, Setup::default()).await
}

/// Which kernels a test model runs on: the adapter's own choice (lavapipe here: the
/// CPU-adapter kernels), or another KV format or adapter kind (a GPU: the kernels real GPUs
/// run: matvec_gpu.wgsl, the tiled matmul, wide attention and reductions, greedy steps
/// queued ahead); and how many rows of every position's logits come back at a time.
#[derive(Clone, Copy, Default)]
struct Setup {
    kv: Option<KvFormat>,
    adapter: Option<AdapterKind>,
    logit_chunk_rows: Option<usize>,
    /// Tokens per micro-batch, where not the plan's.
    ubatch: Option<usize>,
}

const GPU: AdapterKind = AdapterKind::Gpu { matvec_lanes: 16 };
const GPU_KERNELS: Setup = Setup {
    kv: None,
    adapter: Some(GPU),
    logit_chunk_rows: None,
    ubatch: None,
};

async fn load_with(file: &str, setup: Setup) -> Arc<Model> {
    let bytes = std::fs::read(fixtures().join(file)).expect("fixture model");
    let source = SliceSource(&bytes);
    let gguf = read_header(&source).await.expect("header");
    let mut gpu = Gpu::new()
        .await
        .expect("a GPU adapter (lavapipe: apt-get install mesa-vulkan-drivers)");
    if let Some(adapter) = setup.adapter {
        gpu.set_adapter_kind(adapter).unwrap();
    }
    if let Some(kv) = setup.kv {
        assert!(gpu.set_kv_format(kv), "{kv:?} KV cache on this adapter");
    }
    Arc::new(
        Model::load(Arc::new(gpu), &gguf, &source, &mut |_, _| {})
            .await
            .expect("model loads"),
    )
}

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(format!("{name}.json"))).unwrap())
        .unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

/// llama.cpp rounds activations to 8 bits inside quantized matmuls (to bf16/f16 for bf16/f16
/// weights); Hearth keeps them in f32 (both keep the KV cache in f16, Hearth where the GPU
/// has shader-f16). A top-1 disagreement is only a failure where
/// llama.cpp's own top-1/top-2 margin is wider than that rounding noise. Measured against an
/// exact f64 forward pass, llama.cpp's largest logit error on these fixtures is 0.24 (Q4_K_M),
/// 0.18 (Q8_0), 0.09 (BF16), 0.006 (F32); Hearth's is 1.4e-5 with an f32 cache.
fn near_tie_margin(name: &str) -> f32 {
    if name.contains("bf16") {
        0.1
    } else if name.contains("f32") || name.contains("f16") || name.contains("longrope") {
        0.02
    } else {
        0.3
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn top2(row: &[f32]) -> (usize, f32) {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    (idx[0], row[idx[0]] - row[idx[1]])
}

async fn check_logits(name: &str) {
    check_logits_with(name, Setup::default()).await
}

async fn check_logits_with(name: &str, setup: Setup) {
    let meta = reference(name);
    let model = load_with(meta["model"].as_str().unwrap(), setup).await;
    let tie = near_tie_margin(name);
    for case in meta["logits"].as_array().unwrap() {
        let tokens = ids(&case["tokens"]);
        let n_vocab = case["n_vocab"].as_u64().unwrap() as usize;
        let bytes = std::fs::read(fixtures().join(case["file"].as_str().unwrap())).unwrap();
        let expected: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let ctx = case["ctx"].as_u64().unwrap() as usize;
        let mut session = Session::new(model.clone(), Some(ctx)).await.unwrap();
        if let Some(ubatch) = setup.ubatch {
            let plan = MemoryPlan {
                ubatch,
                ..*session.plan()
            };
            session = Session::from_plan(model.clone(), &plan).await.unwrap();
        }
        if let Some(rows) = setup.logit_chunk_rows {
            session.set_logit_chunk_rows(rows);
        }
        let got = session.logits(&tokens).await.unwrap();
        assert_eq!(got.len(), tokens.len() * n_vocab);
        let mut checked_top1 = 0;
        for (pos, (g, e)) in got
            .chunks(n_vocab)
            .zip(expected.chunks(n_vocab))
            .enumerate()
        {
            let cos = cosine(g, e);
            assert!(
                cos >= 0.999,
                "{name}/{}: position {pos}: cosine {cos:.6} < 0.999",
                case["case"]
            );
            let (expected_top, margin) = top2(e);
            if margin >= tie {
                assert_eq!(
                    top2(g).0,
                    expected_top,
                    "{name}/{}: position {pos}: top-1 differs (llama.cpp margin {margin})",
                    case["case"]
                );
                checked_top1 += 1;
            }
        }
        assert!(
            checked_top1 * 2 >= tokens.len(),
            "{name}: too few clear positions ({checked_top1}/{}) for a meaningful top-1 check",
            tokens.len()
        );
    }
}

async fn check_greedy(name: &str) {
    check_greedy_with(name, Setup::default()).await
}

async fn check_greedy_with(name: &str, setup: Setup) {
    let meta = reference(name);
    let model = load_with(meta["model"].as_str().unwrap(), setup).await;
    let g = &meta["greedy"];
    let expected = ids(&g["tokens"]);
    let margins: Vec<f64> = g["margins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_f64().unwrap())
        .collect();
    let mut session = Session::new(model, Some(g["ctx"].as_u64().unwrap() as usize))
        .await
        .unwrap();
    // Decoded as `generate` decodes: each step queued before the token it feeds is read back.
    let got = decode_greedy(&mut session, &ids(&g["prompt"]), expected.len())
        .await
        .unwrap();
    let tie = near_tie_margin(name) as f64;
    for (step, ((&want, &margin), &next)) in expected.iter().zip(&margins).zip(&got).enumerate() {
        if next != want {
            // Only acceptable where llama.cpp's own choice was decided by its rounding.
            assert!(
                margin < tie,
                "{name}: greedy token {step} is {next}, llama.cpp chose {want} by a clear margin of {margin}"
            );
            assert!(
                step >= 8,
                "{name}: the continuations part at step {step}, too early for a meaningful comparison"
            );
            return;
        }
    }
}

macro_rules! fixture_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        mod logits {
            $(#[test] fn $test() { pollster::block_on(super::check_logits($name)); })*
        }
        mod greedy {
            $(#[test] fn $test() { pollster::block_on(super::check_greedy($name)); })*
        }
        /// The same on the kernels real GPUs run.
        mod gpu_kernels_logits {
            $(#[test] fn $test() {
                pollster::block_on(super::check_logits_with($name, super::GPU_KERNELS));
            })*
        }
        mod gpu_kernels_greedy {
            $(#[test] fn $test() {
                pollster::block_on(super::check_greedy_with($name, super::GPU_KERNELS));
            })*
        }
    };
}

fixture_tests! {
    f32_mha_separate_output => "tiny-f32-mha",
    f16_gqa_partial_rotary_tied => "tiny-f16-gqa-tied",
    bf16_gqa => "tiny-bf16-gqa",
    q8_0 => "tiny-q8_0",
    q4_0 => "tiny-q4_0",
    q4_1_single_kv_head_tied => "tiny-q4_1",
    q5_0 => "tiny-q5_0",
    q5_1 => "tiny-q5_1",
    q4_k_m => "tiny-q4_k_m",
    q5_k_m => "tiny-q5_k_m",
    q6_k => "tiny-q6_k",
    longrope_short_and_long_factors => "tiny-longrope",
    qwen2_qkv_biases => "tiny-qwen2-f16",
    qwen2_q4_k_m_tied => "tiny-qwen2-q4_k_m",
    qwen3_head_norms_wider_queries => "tiny-qwen3-f16",
    qwen3_q4_k_m_tied => "tiny-qwen3-q4_k_m",
    gemma3_sliding_window_and_linear_rope_scaling => "tiny-gemma3-f16",
    gemma3_q4_k_m => "tiny-gemma3-q4_k_m",
}

/// The f32 KV cache and f16 packed in pairs (the default where the adapter has no shader-f16:
/// SwiftShader in Chromium, and GPUs without it) match too, on both kernel sets.
#[test]
fn f32_and_packed_f16_kv_cache_logits() {
    for kv in [KvFormat::F32, KvFormat::PackedF16] {
        for adapter in [None, Some(GPU)] {
            for name in ["tiny-q4_k_m", "tiny-f16-gqa-tied", "tiny-longrope"] {
                pollster::block_on(check_logits_with(
                    name,
                    Setup {
                        kv: Some(kv),
                        adapter,
                        ..Setup::default()
                    },
                ));
            }
        }
    }
}

/// Every position's logits read back a few rows at a time, through one small buffer (prompts
/// of 200 and 300 tokens in chunks of 7 rows), equal llama.cpp's, on both kernel sets.
#[test]
fn logits_of_long_prompts_come_back_in_chunks() {
    for adapter in [None, Some(GPU)] {
        let setup = Setup {
            adapter,
            logit_chunk_rows: Some(7),
            ..Setup::default()
        };
        pollster::block_on(check_logits_with("tiny-longrope", setup));
    }
}

/// f16 caches, native or packed, take half the bytes of f32 ones.
#[test]
fn f16_kv_cache_takes_half_the_memory() {
    pollster::block_on(async {
        let f32_model = load_with(
            "tiny-f16-gqa-tied.gguf",
            Setup {
                kv: Some(KvFormat::F32),
                ..Setup::default()
            },
        )
        .await;
        assert_eq!(
            f32_model.kernels.choice().tuning().kv_format.value_bytes(),
            4
        );
        let f32_bytes = Session::new(f32_model, Some(600)).await.unwrap().kv_bytes();
        for kv in [None, Some(KvFormat::PackedF16)] {
            let f16_model = load_with(
                "tiny-f16-gqa-tied.gguf",
                Setup {
                    kv,
                    ..Setup::default()
                },
            )
            .await;
            let f16_bytes = Session::new(f16_model, Some(600)).await.unwrap().kv_bytes();
            assert_eq!(f32_bytes, 2 * f16_bytes, "{kv:?}");
        }
    });
}

/// Splitting every matrix into many row chunks (as on a device with small bindings) must not
/// change a single logit.
#[test]
fn split_tensors_give_the_same_logits() {
    pollster::block_on(async {
        let bytes = std::fs::read(fixtures().join("tiny-q6_k.gguf")).unwrap();
        let source = SliceSource(&bytes);
        let gguf = read_header(&source).await.unwrap();
        let whole = Arc::new(
            Model::load(
                Arc::new(Gpu::new().await.unwrap()),
                &gguf,
                &source,
                &mut |_, _| {},
            )
            .await
            .unwrap(),
        );
        let mut small = Gpu::new().await.unwrap();
        small.limit_binding_bytes(64 << 10);
        let split = Arc::new(
            Model::load(Arc::new(small), &gguf, &source, &mut |_, _| {})
                .await
                .unwrap(),
        );
        assert!(
            split.token_embd.chunks.len() > 1
                && split.layers[0].ffn_gate_up[0].weight.chunks.len() > 1
        );
        let tokens: Vec<u32> = (0..20).map(|i| (i * 37 + 5) % 320).collect();
        let a = Session::new(whole, Some(64))
            .await
            .unwrap()
            .logits(&tokens)
            .await
            .unwrap();
        let b = Session::new(split, Some(64))
            .await
            .unwrap()
            .logits(&tokens)
            .await
            .unwrap();
        let max_diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(
            max_diff < 1e-4,
            "split and whole tensors differ by {max_diff}"
        );
    });
}

/// Prefill of a prompt and token-by-token decoding of it fill the same KV cache.
#[test]
fn prefill_then_decode_equals_one_pass() {
    pollster::block_on(async {
        let model = load("tiny-q8_0.gguf").await;
        let tokens: Vec<u32> = (0..30).map(|i| (i * 53 + 11) % 320).collect();
        let all = Session::new(model.clone(), Some(64))
            .await
            .unwrap()
            .logits(&tokens)
            .await
            .unwrap();
        let mut session = Session::new(model, Some(64)).await.unwrap();
        let mut stepwise = session.logits(&tokens[..17]).await.unwrap();
        for &t in &tokens[17..] {
            stepwise.extend(session.logits(&[t]).await.unwrap());
        }
        let max_diff = all
            .iter()
            .zip(&stepwise)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(
            max_diff < 1e-3,
            "stepwise decoding differs from one pass by {max_diff}"
        );
    });
}

/// The KV cache starts small and grows (with a copy) as the conversation passes its capacity.
#[test]
fn kv_cache_grows_with_use_and_context_is_enforced() {
    pollster::block_on(async {
        let model = load("tiny-f16-gqa-tied.gguf").await;
        let mut session = Session::new(model.clone(), Some(600)).await.unwrap();
        let per_token = model
            .config
            .kv_bytes_per_token(model.kernels.choice().tuning().kv_format.value_bytes());
        assert_eq!(
            session.kv_bytes(),
            256 * per_token,
            "the cache starts at 256 tokens, not the window"
        );
        let tokens: Vec<u32> = (0..300).map(|i| (i * 7 + 3) % 320).collect();
        let grown = session.logits(&tokens).await.unwrap();
        assert!(session.kv_bytes() >= 300 * per_token && session.kv_bytes() <= 600 * per_token);
        let fresh = Session::new(model, Some(300))
            .await
            .unwrap()
            .logits(&tokens)
            .await
            .unwrap();
        let max_diff = grown
            .iter()
            .zip(&fresh)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < 1e-3);
        let err = session.logits(&vec![1; 301]).await.unwrap_err();
        assert!(
            err.to_string().contains("context window holds 600"),
            "{err}"
        );
        let err = session.logits(&[320]).await.unwrap_err();
        assert!(
            err.to_string().contains("outside the model's vocabulary"),
            "{err}"
        );
    });
}

/// Gemma 3's sliding-window layers keep their window and a micro-batch in a ring of rows: in
/// micro-batches of 4, 16 + 4 - 1 = 19 rows for 40 positions, so every key wraps around,
/// prefill and decode alike.
#[test]
fn gemma3_sliding_window_layers_in_a_ring() {
    let ring = Setup {
        ubatch: Some(4),
        ..Setup::default()
    };
    for name in ["tiny-gemma3-f16", "tiny-gemma3-q4_k_m"] {
        pollster::block_on(check_logits_with(name, ring));
        pollster::block_on(check_logits_with(
            name,
            Setup {
                adapter: Some(GPU),
                ..ring
            },
        ));
    }
}

/// Going back in a conversation (a regenerated reply) keeps the cache only while every ring
/// still holds the window before the point it goes back to; otherwise the session starts
/// over, and either way the next logits are llama.cpp's.
#[test]
fn gemma3_rings_and_going_back() {
    pollster::block_on(async {
        let name = "tiny-gemma3-f16";
        let meta = reference(name);
        let model = load_with(meta["model"].as_str().unwrap(), Setup::default()).await;
        let case = &meta["logits"][0];
        let tokens = ids(&case["tokens"]);
        let n_vocab = case["n_vocab"].as_u64().unwrap() as usize;
        let expected: Vec<f32> = std::fs::read(fixtures().join(case["file"].as_str().unwrap()))
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let session = Session::new(model.clone(), Some(512)).await.unwrap();
        let plan = MemoryPlan {
            ubatch: 4,
            ..*session.plan()
        };
        let mut session = Session::from_plan(model, &plan).await.unwrap();
        session.feed(&tokens).await.unwrap();
        // 40 positions written; the rings hold 19 rows, the window is 16.
        for (back_to, kept) in [(39, 39), (36, 36), (30, 0)] {
            session.truncate(back_to);
            assert_eq!(session.history().len(), kept, "going back to {back_to}");
            let again = session.logits(&tokens[kept..]).await.unwrap();
            let last = &again[again.len() - n_vocab..];
            let want = &expected[(tokens.len() - 1) * n_vocab..];
            assert!(cosine(last, want) >= 0.999, "after going back to {back_to}");
        }
    });
}
