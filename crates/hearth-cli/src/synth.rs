//! `hearth synth`: random-weight GGUFs with the real shapes of the Phi-4 family, so speed and
//! memory can be measured at full scale with no download. Seeded, and complete enough (a
//! byte-level vocabulary of the right size) for llama.cpp to load the same file.

use crate::AnyError;
use hearth_engine::sampling::SplitMix64;
use hearth_gguf::writer::{GgufWriter, TensorSpec};
use hearth_gguf::{GgmlType, MetadataValue as V};
use std::io::BufWriter;
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Shape {
    /// 32 layers, hidden 3072, 24/8 heads, partial rotary, LongRoPE, 200,064 tokens, tied output.
    #[value(name = "phi-4-mini")]
    Phi4Mini,
    /// 40 layers, hidden 5120, 40/10 heads, 100,352 tokens.
    #[value(name = "phi-4")]
    Phi4,
    /// 32 layers, hidden 3072, 32/32 heads, LongRoPE, 32,064 tokens.
    #[value(name = "phi-3.5-mini")]
    Phi35Mini,
    /// The test fixtures' shape: 2 layers, hidden 256.
    Tiny,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum Quant {
    #[value(name = "q4_k_m")]
    Q4KM,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "f16")]
    F16,
}

#[derive(clap::Args)]
pub struct SynthArgs {
    #[arg(long, value_enum)]
    shape: Shape,
    #[arg(long, value_enum, default_value = "q4_k_m")]
    quant: Quant,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fewer layers than the real model (quicker experiments at real width).
    #[arg(long)]
    layers: Option<usize>,
}

struct Dims {
    name: &'static str,
    n_embd: u64,
    n_layer: usize,
    n_head: u64,
    n_head_kv: u64,
    n_ff: u64,
    n_vocab: u64,
    n_rot: u64,
    ctx: u64,
    longrope_original_ctx: Option<u64>,
    tied: bool,
}

fn dims(shape: Shape) -> Dims {
    match shape {
        Shape::Phi4Mini => Dims {
            name: "synthetic Phi-4-mini",
            n_embd: 3072,
            n_layer: 32,
            n_head: 24,
            n_head_kv: 8,
            n_ff: 8192,
            n_vocab: 200_064,
            n_rot: 96,
            ctx: 131_072,
            longrope_original_ctx: Some(4096),
            tied: true,
        },
        Shape::Phi4 => Dims {
            name: "synthetic Phi-4",
            n_embd: 5120,
            n_layer: 40,
            n_head: 40,
            n_head_kv: 10,
            n_ff: 17920,
            n_vocab: 100_352,
            n_rot: 128,
            ctx: 16384,
            longrope_original_ctx: None,
            tied: false,
        },
        Shape::Phi35Mini => Dims {
            name: "synthetic Phi-3.5-mini",
            n_embd: 3072,
            n_layer: 32,
            n_head: 32,
            n_head_kv: 32,
            n_ff: 8192,
            n_vocab: 32_064,
            n_rot: 96,
            ctx: 131_072,
            longrope_original_ctx: Some(4096),
            tied: false,
        },
        Shape::Tiny => Dims {
            name: "synthetic tiny",
            n_embd: 256,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 512,
            n_vocab: 320,
            n_rot: 48,
            ctx: 4096,
            longrope_original_ctx: None,
            tied: false,
        },
    }
}

/// The type llama.cpp's Q4_K_M recipe gives each matrix (Q6_K for the output and for
/// `ffn_down` in the first and last eighth of the layers and every third between).
fn type_for(quant: Quant, name: &str, layer: Option<usize>, n_layer: usize) -> GgmlType {
    match quant {
        Quant::Q4_0 => GgmlType::Q4_0,
        Quant::Q8_0 => GgmlType::Q8_0,
        Quant::F16 => GgmlType::F16,
        Quant::Q4KM => {
            let more_bits =
                |i: usize| i < n_layer / 8 || i >= 7 * n_layer / 8 || (i - n_layer / 8) % 3 == 2;
            match (name, layer) {
                ("output.weight", _) => GgmlType::Q6K,
                (n, Some(i)) if n.ends_with("ffn_down.weight") && more_bits(i) => GgmlType::Q6K,
                _ => GgmlType::Q4K,
            }
        }
    }
}

/// Fills `buf` with seeded random bytes.
fn fill(rng: &mut SplitMix64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let v = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// The f16 bytes of `v`, subnormals included (the K-quants' block scales are below f16's
/// normal range).
fn f16_bits(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

/// Random blocks whose values stay small (|w| ≲ 0.05) so activations stay finite.
fn random_tensor(rng: &mut SplitMix64, t: &TensorSpec, buf: &mut [u8]) {
    match t.ty {
        GgmlType::F32 => {
            for v in buf.chunks_exact_mut(4) {
                v.copy_from_slice(&(1.0f32 + (rng.next_u64() % 1000) as f32 * 1e-4).to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for v in buf.chunks_exact_mut(2) {
                let r = rng.next_u64();
                let x = ((r % 2001) as f32 - 1000.0) * 5e-5;
                v.copy_from_slice(&f16_bits(x));
            }
        }
        ty => {
            fill(rng, buf);
            let size = ty.type_size();
            // (offset of each f16 scale, its value): value ≈ 0.05 / the largest code. Q4_K's
            // minimum scale is 7.5 times its scale, so that with random 6-bit sub-block scales
            // and minimums the weights centre on zero, as real ones do.
            let scales: &[(usize, f32)] = match ty {
                GgmlType::Q8_0 => &[(0, 0.05 / 127.0)],
                GgmlType::Q4_0 => &[(0, 0.05 / 8.0)],
                GgmlType::Q4K => &[(0, 0.05 / 945.0), (2, 7.5 * 0.05 / 945.0)],
                GgmlType::Q6K => &[(208, 0.05 / 4064.0)],
                other => unreachable!("synth does not write {other}"),
            };
            for block in buf.chunks_exact_mut(size) {
                for &(at, v) in scales {
                    block[at..at + 2].copy_from_slice(&f16_bits(v));
                }
            }
        }
    }
}

pub fn run(args: SynthArgs) -> Result<(), AnyError> {
    let mut d = dims(args.shape);
    if let Some(layers) = args.layers {
        d.n_layer = layers.max(1);
    }
    let head_dim = d.n_embd / d.n_head;
    let kv_dim = d.n_head_kv * head_dim;
    let u32v = |v: u64| V::U32(v as u32);
    let mut w = GgufWriter::default();
    w.meta("general.architecture", V::String("phi3".into()))
        .meta("general.name", V::String(d.name.into()))
        .meta("phi3.context_length", u32v(d.ctx))
        .meta("phi3.embedding_length", u32v(d.n_embd))
        .meta("phi3.block_count", u32v(d.n_layer as u64))
        .meta("phi3.feed_forward_length", u32v(d.n_ff))
        .meta("phi3.attention.head_count", u32v(d.n_head))
        .meta("phi3.attention.head_count_kv", u32v(d.n_head_kv))
        .meta("phi3.attention.layer_norm_rms_epsilon", V::F32(1e-5))
        .meta("phi3.rope.freq_base", V::F32(10000.0))
        .meta("phi3.rope.dimension_count", u32v(d.n_rot));
    if let Some(orig) = d.longrope_original_ctx {
        let attn_factor = (1.0 + (d.ctx as f64 / orig as f64).ln() / (orig as f64).ln()).sqrt();
        w.meta("phi3.rope.scaling.original_context_length", u32v(orig))
            .meta("phi3.rope.scaling.attn_factor", V::F32(attn_factor as f32));
    }
    // A byte-level vocabulary of the real size: 256 byte tokens, then filler tokens.
    let tokens: Vec<V> = (0..d.n_vocab)
        .map(|i| {
            V::String(match i {
                0..256 => byte_token(i as u8),
                256 => "Ġt".into(), // the result of the one merge below
                _ => format!("<|synthetic_{i}|>"),
            })
        })
        .collect();
    w.meta("tokenizer.ggml.model", V::String("gpt2".into()))
        .meta("tokenizer.ggml.pre", V::String("default".into()))
        .meta("tokenizer.ggml.tokens", V::Array(tokens))
        .meta(
            "tokenizer.ggml.token_type",
            V::Array((0..d.n_vocab).map(|_| V::I32(1)).collect()),
        )
        .meta(
            "tokenizer.ggml.merges",
            V::Array(vec![V::String("Ġ t".into())]),
        )
        .meta("tokenizer.ggml.bos_token_id", V::U32(0))
        .meta("tokenizer.ggml.eos_token_id", V::U32(1));

    let q = |name: &str, layer: Option<usize>| type_for(args.quant, name, layer, d.n_layer);
    w.tensor(
        "token_embd.weight",
        &[d.n_embd, d.n_vocab],
        q("token_embd.weight", None),
    );
    for i in 0..d.n_layer {
        let n = |s: &str| format!("blk.{i}.{s}.weight");
        w.tensor(&n("attn_norm"), &[d.n_embd], GgmlType::F32);
        w.tensor(
            &n("attn_qkv"),
            &[d.n_embd, d.n_embd + 2 * kv_dim],
            q(&n("attn_qkv"), Some(i)),
        );
        w.tensor(
            &n("attn_output"),
            &[d.n_embd, d.n_embd],
            q(&n("attn_output"), Some(i)),
        );
        w.tensor(&n("ffn_norm"), &[d.n_embd], GgmlType::F32);
        w.tensor(
            &n("ffn_up"),
            &[d.n_embd, 2 * d.n_ff],
            q(&n("ffn_up"), Some(i)),
        );
        w.tensor(
            &n("ffn_down"),
            &[d.n_ff, d.n_embd],
            q(&n("ffn_down"), Some(i)),
        );
    }
    w.tensor("output_norm.weight", &[d.n_embd], GgmlType::F32);
    if !d.tied {
        w.tensor(
            "output.weight",
            &[d.n_embd, d.n_vocab],
            q("output.weight", None),
        );
    }
    if d.longrope_original_ctx.is_some() {
        w.tensor("rope_factors_long.weight", &[d.n_rot / 2], GgmlType::F32);
        w.tensor("rope_factors_short.weight", &[d.n_rot / 2], GgmlType::F32);
    }
    let file = std::fs::File::create(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let mut rng = SplitMix64(args.seed);
    w.write(&mut BufWriter::with_capacity(8 << 20, file), |t, buf| {
        random_tensor(&mut rng, t, buf)
    })
    .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    eprintln!(
        "wrote {} ({:.2} GiB)",
        args.out.display(),
        w.file_len() as f64 / (1u64 << 30) as f64
    );
    Ok(())
}

/// GPT-2's printable stand-in for a byte.
fn byte_token(b: u8) -> String {
    let printable =
        (b'!'..=b'~').contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    if printable {
        char::from(b).to_string()
    } else {
        let rank = (0..b)
            .filter(|&c| {
                !((b'!'..=b'~').contains(&c)
                    || (0xa1..=0xac).contains(&c)
                    || (0xae..=0xff).contains(&c))
            })
            .count();
        char::from_u32(256 + rank as u32)
            .expect("valid char")
            .to_string()
    }
}
