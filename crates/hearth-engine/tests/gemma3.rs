//! A second real model, Gemma 3 270M (gemma3 architecture, Q4_K_M with a Q8_0 embedding, a
//! 262,144-token SentencePiece vocabulary, sliding-window attention on five layers of six),
//! against an exact float64 forward pass and llama.cpp: tokenization of hard strings, the chat
//! prompt, teacher-forced logits (past the 512-position window too), and the greedy answer.
//! References from `scripts/make-gemma3-references.py`; the model from
//! `scripts/fetch-gemma3.sh` (which `scripts/test.sh` runs).

mod common;

use common::{ids, root};
use hearth_engine::{Gpu, Model, Session};
use hearth_gguf::{SliceSource, read_header};
use hearth_text::{Message, Tokenizer, chat_template};
use serde_json::Value;
use std::sync::Arc;

/// One position of a `<case>.top.bin` reference (layout: the reference script's docstring).
struct Top {
    ids: Vec<usize>,
    exact: Vec<f32>,
    llama: Vec<f32>,
    exact_margin: f32,
    llama_top1: usize,
    llama_margin: f32,
}

fn read_tops(bytes: &[u8], top: usize) -> Vec<Top> {
    let words: Vec<[u8; 4]> = bytes
        .chunks_exact(4)
        .map(|c| c.try_into().unwrap())
        .collect();
    let u = |w: &[u8; 4]| u32::from_le_bytes(*w) as usize;
    let f = |w: &[u8; 4]| f32::from_le_bytes(*w);
    words
        .chunks_exact(3 * top + 3)
        .map(|row| Top {
            ids: row[..top].iter().map(u).collect(),
            exact: row[top..2 * top].iter().map(f).collect(),
            llama: row[2 * top..3 * top].iter().map(f).collect(),
            exact_margin: f(&row[3 * top]),
            llama_top1: u(&row[3 * top + 1]),
            llama_margin: f(&row[3 * top + 2]),
        })
        .collect()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0
}

#[test]
fn gemma3_270m_matches_an_exact_pass_and_llama_cpp() {
    let dir = root().join("tests/fixtures/gemma3");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let path = root()
        .join("models")
        .join(reference["model"].as_str().unwrap());
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-gemma3.sh", path.display()));
    pollster::block_on(async {
        let source = SliceSource(&bytes);
        let gguf = read_header(&source).await.unwrap();
        let tok = Tokenizer::from_gguf(&gguf).unwrap();
        assert_eq!(tok.vocab_size(), 262_144);

        // Hard strings, with and without special tokens.
        common::tokenizations_like_llama_cpp(&tok, &reference);

        // The file has no chat template: the built-in Gemma format, with one BOS.
        let template = chat_template(&gguf, &tok).unwrap();
        let question = reference["question"].as_str().unwrap();
        let rendered = template
            .render(&[Message::new("user", question)], true)
            .unwrap();
        let cases = reference["cases"].as_array().unwrap();
        let chat_tokens = ids(&cases[0]["tokens"]);
        assert_eq!(tok.encode_prompt(&rendered).unwrap(), chat_tokens);
        assert!(tok.end_of_turn_ids().contains(&106), "<end_of_turn> stops");

        let gpu = Arc::new(Gpu::new().await.unwrap());
        let model = Arc::new(
            Model::load(gpu, &gguf, &source, &mut |_, _| {})
                .await
                .unwrap(),
        );
        assert_eq!(model.config.arch, hearth_model::Architecture::Gemma3);
        let n_vocab = model.config.n_vocab;
        let top = reference["top"].as_u64().unwrap() as usize;

        // Teacher-forced logits: the chat prompt at every position; the long text past the
        // window (its first `skip` tokens only fill the cache). At each position, the exact
        // pass's 16 best tokens: Hearth's logits within 0.05 of the exact ones (llama.cpp,
        // rounding activations to 8 bits, is off by up to 3), the same top-1 wherever the
        // exact pass is not a near-tie, and llama.cpp's top-1 wherever it is clear.
        for (case, skip) in cases.iter().zip([0, 560]) {
            let name = case["name"].as_str().unwrap();
            let tokens = ids(&case["tokens"]);
            let tops = read_tops(
                &std::fs::read(dir.join(case["file"].as_str().unwrap())).unwrap(),
                top,
            );
            let mut session = Session::new(model.clone(), Some(1024)).await.unwrap();
            if skip > 0 {
                session.feed(&tokens[..skip]).await.unwrap();
            }
            let got = session.logits(&tokens[skip..]).await.unwrap();
            let mut clear = 0;
            for (row, t) in got.chunks(n_vocab).zip(&tops[skip..]) {
                let pos = skip + clear;
                for (&id, &want) in t.ids.iter().zip(&t.exact) {
                    assert!(
                        (row[id] - want).abs() <= 0.05,
                        "{name} position {pos}: logit of {id} is {}, exactly {want} (llama.cpp {})",
                        row[id],
                        t.llama[t.ids.iter().position(|&i| i == id).unwrap()]
                    );
                }
                if t.exact_margin > 0.02 {
                    assert_eq!(argmax(row), t.ids[0], "{name} position {pos}: top-1");
                }
                if t.llama_margin > 1.0 {
                    assert_eq!(
                        argmax(row),
                        t.llama_top1,
                        "{name} position {pos}: llama.cpp"
                    );
                }
                clear += 1;
            }
            assert_eq!(
                clear,
                tokens.len() - skip,
                "{name}: every position compared"
            );
        }

        // The greedy answer (the base model continues the text rather than answering), token
        // for token up to where llama.cpp's own choice was a near-tie.
        let text =
            common::greedy_answer_like_llama_cpp(model, &tok, &chat_tokens, &reference).await;
        assert!(
            text.starts_with("What is the capital of France?"),
            "{text:?}"
        );
    });
}
