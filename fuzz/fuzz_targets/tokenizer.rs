//! A tokenizer built from whatever vocabulary a GGUF file carries (tokens, types, scores,
//! merges, special ids, pre-tokenizer name), then text encoded and decoded with it.
//! The vocabulary goes through the real GGUF writer and parser, as from a file.
#![no_main]

use arbitrary::Arbitrary;
use hearth_gguf::writer::GgufWriter;
use hearth_gguf::{MetadataValue, parse_header};
use hearth_text::{StreamDecoder, Tokenizer, chat_template};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Vocabulary {
    sentence_piece: bool,
    pre: Option<String>,
    tokens: Vec<String>,
    types: Option<Vec<i32>>,
    scores: Option<Vec<f32>>,
    merges: Option<Vec<String>>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: Option<bool>,
    add_space_prefix: Option<bool>,
    text: String,
    parse_special: bool,
    ids: Vec<u32>,
}

fn strings(items: &[String]) -> MetadataValue {
    MetadataValue::Array(
        items
            .iter()
            .map(|s| MetadataValue::String(s.clone()))
            .collect(),
    )
}

fuzz_target!(|v: Vocabulary| {
    let mut w = GgufWriter::default();
    w.meta("general.architecture", MetadataValue::String("phi3".into()));
    w.meta(
        "tokenizer.ggml.model",
        MetadataValue::String(if v.sentence_piece { "llama" } else { "gpt2" }.into()),
    );
    w.meta("tokenizer.ggml.tokens", strings(&v.tokens));
    if let Some(pre) = &v.pre {
        w.meta("tokenizer.ggml.pre", MetadataValue::String(pre.clone()));
    }
    if let Some(types) = &v.types {
        w.meta(
            "tokenizer.ggml.token_type",
            MetadataValue::Array(types.iter().map(|&t| MetadataValue::I32(t)).collect()),
        );
    }
    if let Some(scores) = &v.scores {
        w.meta(
            "tokenizer.ggml.scores",
            MetadataValue::Array(scores.iter().map(|&s| MetadataValue::F32(s)).collect()),
        );
    }
    if let Some(merges) = &v.merges {
        w.meta("tokenizer.ggml.merges", strings(merges));
    }
    for (key, id) in [("bos", v.bos), ("eos", v.eos), ("eot", v.eot)] {
        if let Some(id) = id {
            w.meta(
                &format!("tokenizer.ggml.{key}_token_id"),
                MetadataValue::U32(id),
            );
        }
    }
    if let Some(b) = v.add_bos {
        w.meta("tokenizer.ggml.add_bos_token", MetadataValue::Bool(b));
    }
    if let Some(b) = v.add_space_prefix {
        w.meta("tokenizer.ggml.add_space_prefix", MetadataValue::Bool(b));
    }
    let mut file = Vec::new();
    w.write(&mut file, |_, _| {}).expect("writing to memory");
    let gguf = parse_header(&file, file.len() as u64).expect("the writer's own output parses");

    let Ok(tokenizer) = Tokenizer::from_gguf(&gguf) else {
        return;
    };
    let _ = chat_template(&gguf, &tokenizer);
    let Ok(ids) = tokenizer.encode(&v.text, v.parse_special) else {
        return;
    };
    let n = tokenizer.vocab_size() as u32;
    assert!(
        ids.iter().all(|&id| id < n),
        "encode produced an id outside the vocabulary"
    );
    let _ = tokenizer.encode_prompt(&v.text);
    let _ = tokenizer.decode(&ids);
    // Ids from elsewhere (a sampler, a caller) may be anything.
    let _ = tokenizer.decode(&v.ids);
    let mut stream = StreamDecoder::new();
    for &id in v.ids.iter().chain(&ids) {
        let _ = stream.push(&tokenizer, id);
    }
    let _ = stream.finish();
});
