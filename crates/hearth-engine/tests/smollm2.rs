//! The built-in default model, SmolLM2-135M-Instruct (llama architecture, Q4_1 with a Q8_0
//! embedding, tied output), against llama.cpp: tokenization, the chat prompt, teacher-forced
//! logits at every position, and the greedy answer. References from
//! `scripts/make-smollm2-references.py`; the model from `scripts/fetch-default-model.sh`
//! (which `scripts/test.sh` runs).

mod common;

use common::{ids, root};
use hearth_engine::{Gpu, Model, Session};
use hearth_gguf::{SliceSource, read_header};
use hearth_text::{Message, Tokenizer, chat_template};
use serde_json::Value;
use std::sync::Arc;

#[test]
fn smollm2_matches_llama_cpp() {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/smollm2/reference.json")).unwrap(),
    )
    .unwrap();
    let path = root()
        .join("models")
        .join(reference["model"].as_str().unwrap());
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/fetch-default-model.sh",
            path.display()
        )
    });
    pollster::block_on(async {
        let source = SliceSource(&bytes);
        let gguf = read_header(&source).await.unwrap();
        let tok = Tokenizer::from_gguf(&gguf).unwrap();

        // Tokenization of varied text, with and without special tokens.
        common::tokenizations_like_llama_cpp(&tok, &reference);

        // The chat prompt from the file's own template, and its tokens.
        let template = chat_template(&gguf, &tok).unwrap();
        let rendered = template
            .render(
                &[Message::new(
                    "user",
                    reference["question"].as_str().unwrap(),
                )],
                true,
            )
            .unwrap();
        assert_eq!(rendered, reference["prompt"].as_str().unwrap());
        let prompt = tok.encode(&rendered, true).unwrap();
        assert_eq!(prompt, ids(&reference["prompt_tokens"]));

        let gpu = Arc::new(Gpu::new().await.unwrap());
        let model = Arc::new(
            Model::load(gpu, &gguf, &source, &mut |_, _| {})
                .await
                .unwrap(),
        );
        assert_eq!(model.config.arch, hearth_model::Architecture::Llama);

        // Teacher-forced logits at every position of the prompt, against two references:
        // an exact float64 pass (tight) and llama.cpp (which rounds activations to 8 bits and
        // keeps an f16 KV cache; over 30 layers that alone moves its logits by up to cosine
        // 0.974 from the exact ones, measured by the reference script).
        let n_vocab = reference["n_vocab"].as_u64().unwrap() as usize;
        let f16_file = |name: &str| -> Vec<f32> {
            std::fs::read(root().join("tests/fixtures/smollm2").join(name))
                .unwrap()
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()
        };
        let exact = f16_file(reference["exact_logits_file"].as_str().unwrap());
        let llama = f16_file(reference["logits_file"].as_str().unwrap());
        let mut session = Session::new(model.clone(), Some(512)).await.unwrap();
        let got = session.logits(&prompt).await.unwrap();
        let cosine = |a: &[f32], b: &[f32]| {
            let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
            dot / (norm(a) * norm(b))
        };
        let argmax = |v: &[f32]| {
            v.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0
        };
        let mut clear = 0;
        for (pos, ((g, x), l)) in got
            .chunks(n_vocab)
            .zip(exact.chunks(n_vocab))
            .zip(llama.chunks(n_vocab))
            .enumerate()
        {
            let to_exact = cosine(g, x);
            assert!(
                to_exact >= 0.9999,
                "position {pos}: cosine to the exact pass {to_exact:.6}"
            );
            assert_eq!(
                argmax(g),
                argmax(x),
                "position {pos}: top-1 differs from the exact pass"
            );
            let to_llama = cosine(g, l);
            assert!(
                to_llama >= 0.97,
                "position {pos}: cosine to llama.cpp {to_llama:.5}"
            );
            let mut order: Vec<usize> = (0..n_vocab).collect();
            order.sort_by(|&a, &b| l[b].total_cmp(&l[a]));
            let margin = l[order[0]] - l[order[1]];
            if margin > 1.0 {
                assert_eq!(
                    argmax(g),
                    order[0],
                    "position {pos}: top-1 differs from llama.cpp's (its margin {margin})"
                );
                clear += 1;
            }
        }
        assert!(
            clear * 3 >= prompt.len(),
            "too few clear positions: {clear}"
        );

        // The greedy answer, token for token, up to where llama.cpp's own choice was a near-tie.
        let text = common::greedy_answer_like_llama_cpp(model, &tok, &prompt, &reference).await;
        assert!(text.starts_with("The sky on a clear day"), "{text:?}");
    });
}
