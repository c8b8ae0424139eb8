//! What the real-model tests (smollm2.rs, gemma3.rs) share: paths, reference ids, and the
//! tokenizations and greedy answer held to llama.cpp's.

use hearth_engine::{Flow, GenerateOptions, Model, SamplingParams, Session, generate};
use hearth_text::Tokenizer;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

/// Each of the reference's `tokenizations` (text, special tokens on or off) gives llama.cpp's
/// ids.
pub fn tokenizations_like_llama_cpp(tok: &Tokenizer, reference: &Value) {
    for case in reference["tokenizations"].as_array().unwrap() {
        let got = tok
            .encode(
                case["text"].as_str().unwrap(),
                case["special"].as_bool().unwrap(),
            )
            .unwrap();
        assert_eq!(got, ids(&case["ids"]), "tokenizing {:?}", case["text"]);
    }
}

/// The greedy answer after `prompt`, token for token as llama.cpp's (`greedy_answer` in the
/// reference, with `greedy_margins`) up to where llama.cpp's own choice was a near-tie.
/// Returns its text.
pub async fn greedy_answer_like_llama_cpp(
    model: Arc<Model>,
    tok: &Tokenizer,
    prompt: &[u32],
    reference: &Value,
) -> String {
    let want = ids(&reference["greedy_answer"]);
    let margins: Vec<f64> = reference["greedy_margins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_f64().unwrap())
        .collect();
    let mut session = Session::new(model, Some(512)).await.unwrap();
    let options = GenerateOptions {
        max_tokens: want.len(),
        sampling: SamplingParams::greedy(),
        ..Default::default()
    };
    let answer = generate(&mut session, tok, prompt, &options, &mut |_, _| {
        Flow::Continue
    })
    .await
    .unwrap();
    for (i, (&g, &w)) in answer.tokens.iter().zip(&want).enumerate() {
        if g != w {
            assert!(
                margins[i] < 1.0 && i >= 4,
                "answer token {i}: {g} vs llama.cpp's {w} (margin {})",
                margins[i]
            );
            break;
        }
    }
    answer.text
}
