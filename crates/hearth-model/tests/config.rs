//! The model configuration read from hostile or broken headers: clear errors, quickly.

use hearth_gguf::parse_header;
use hearth_model::{Activation, Config, LayerAttention, ModelError};
use std::time::Instant;

fn fixture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/tiny-q8_0.gguf"
    ))
    .unwrap()
}

/// The fixture with the u32 value of metadata key `key` replaced.
fn with_u32(key: &str, value: u32) -> Vec<u8> {
    let mut bytes = fixture();
    let at = bytes
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .unwrap()
        + key.len();
    assert_eq!(bytes[at..at + 4], 4u32.to_le_bytes(), "{key} is a u32");
    bytes[at + 4..at + 8].copy_from_slice(&value.to_le_bytes());
    bytes
}

fn config_error(bytes: &[u8]) -> ModelError {
    let gguf = parse_header(bytes, bytes.len() as u64).unwrap();
    Config::from_gguf(&gguf).unwrap_err()
}

#[test]
fn the_fixture_reads() {
    let bytes = fixture();
    let gguf = parse_header(&bytes, bytes.len() as u64).unwrap();
    assert_eq!(Config::from_gguf(&gguf).unwrap().n_layer, 2);
}

#[test]
fn a_layer_count_the_tensors_cannot_back_is_refused_at_once() {
    // Found by fuzzing: a million layers made the reader build names for all of them.
    let started = Instant::now();
    let err = config_error(&with_u32("phi3.block_count", 0x0010_0001));
    assert!(
        started.elapsed().as_millis() < 500,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(err.code(), "bad-model");
    assert!(
        err.to_string().contains("'phi3.block_count'")
            && err
                .to_string()
                .contains("1048577 layers, but the file holds"),
        "{err}"
    );
    assert!(
        config_error(&with_u32("phi3.block_count", 0))
            .to_string()
            .contains("0 is not a size any model has")
    );
}

#[test]
fn sizes_beyond_any_model_are_refused() {
    for key in [
        "phi3.embedding_length",
        "phi3.feed_forward_length",
        "phi3.context_length",
        "phi3.attention.head_count",
    ] {
        let err = config_error(&with_u32(key, u32::MAX));
        assert!(
            err.to_string()
                .contains("4294967295 is not a size any model has"),
            "{key}: {err}"
        );
    }
}

#[test]
fn inconsistent_head_counts_are_unsupported_not_a_crash() {
    let err = config_error(&with_u32("phi3.attention.head_count_kv", 3));
    assert_eq!(err.code(), "unsupported-model");
    assert!(
        err.to_string().contains("cannot share 3 key/value heads"),
        "{err}"
    );
}

#[test]
fn an_architecture_not_supported_yet_names_those_that_are() {
    // DBRX, a mixture of experts: the file's own architecture name, renamed in place.
    let mut bytes = fixture();
    let key = b"general.architecture";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    let value = at + 4 + 8; // the value's type, then its length
    assert_eq!(&bytes[value..value + 4], b"phi3");
    bytes[value..value + 4].copy_from_slice(b"dbrx");
    let err = config_error(&bytes);
    assert_eq!(err.code(), "unsupported-model");
    assert_eq!(
        err.to_string(),
        "architecture 'dbrx' is not supported (supported: phi3, llama, qwen2, qwen3, gemma3)"
    );
}

#[test]
fn qwen3_queries_may_be_wider_than_the_embedding() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/tiny-qwen3-f16.gguf"
    ))
    .unwrap();
    let gguf = parse_header(&bytes, bytes.len() as u64).unwrap();
    let c = Config::from_gguf(&gguf).unwrap();
    assert_eq!((c.n_embd, c.head_dim, c.q_dim()), (256, 96, 384));
    let layer = &c.weights.layers[1];
    assert_eq!(
        layer.qk_norm.as_ref().unwrap().k,
        "blk.1.attn_k_norm.weight"
    );
    assert!(layer.qkv_bias.is_none());
}

#[test]
fn gemma3_layers_alternate_five_local_to_one_global() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/tiny-gemma3-f16.gguf"
    ))
    .unwrap();
    let gguf = parse_header(&bytes, bytes.len() as u64).unwrap();
    let c = Config::from_gguf(&gguf).unwrap();
    assert_eq!(c.activation, Activation::GeluTanh);
    assert_eq!(c.embd_scale, 16.0);
    assert_eq!(c.attn_scale, 1.0 / 8.0);
    assert!(c.tied_output());
    let local = LayerAttention {
        window: Some(16),
        rope_base: 10000.0,
        rope_freq_scale: 1.0,
    };
    let global = LayerAttention {
        window: None,
        rope_base: 1e6,
        rope_freq_scale: 0.125,
    };
    let layers: Vec<_> = (0..c.n_layer).map(|il| c.layer_attention(il)).collect();
    assert_eq!(layers, [local, local, local, local, local, global]);
    let layer = &c.weights.layers[5];
    assert_eq!(
        layer.post_ffn_norm.as_deref(),
        Some("blk.5.post_ffw_norm.weight")
    );
}
