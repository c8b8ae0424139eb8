//! A tokenizer built from GGUF metadata alone, producing llama.cpp's token ids.
//!
//! Two vocabulary families, both on the `tokenizers` crate's BPE model:
//! * byte-level BPE (`tokenizer.ggml.model = "gpt2"`: Phi-4, Phi-4-mini, Llama 3, Qwen), with
//!   the pre-tokenizer regexes llama.cpp uses for each `tokenizer.ggml.pre` value;
//! * SentencePiece BPE (`"llama"`: Phi-3, Phi-3.5-mini), where spaces become `▁`, merges
//!   follow the pieces' scores, and characters outside the vocabulary fall back to
//!   `<0xXX>` byte tokens.
//!
//! Special tokens (control, user-defined) are split out first, longest first, exactly as
//! llama.cpp partitions text; the pieces between them are encoded separately.

use crate::TextError;
use hearth_gguf::{Gguf, MetadataValue};
use std::collections::HashMap;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_id(id: i64) -> Self {
        match id {
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Normal,
        }
    }

    /// Tokens llama.cpp matches as whole units in text before BPE.
    fn is_special(self) -> bool {
        matches!(
            self,
            TokenType::Control | TokenType::UserDefined | TokenType::Unknown
        )
    }
}

// Pre-tokenizer regexes, as llama.cpp's llm_tokenizer_bpe applies them (in order).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const DEFAULT: [&str; 4] = [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"];

/// (regexes, ignore_merges) for a `tokenizer.ggml.pre` value, following llama.cpp's table.
fn pre_tokenizer_rules(pre: &str) -> Option<(Vec<&'static str>, bool)> {
    Some(match pre {
        "default" | "" => (DEFAULT.to_vec(), false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" => (vec![LLAMA3], true),
        "dbrx" | "smaug-bpe" => (vec![LLAMA3], false),
        "gpt-2" | "phi-2" | "gpt2" => (vec![GPT2], false),
        "qwen2" | "deepseek-r1-qwen" | "megrez" | "stablelm2" => (vec![QWEN2], false),
        "gpt-4o" | "llama4" => (vec![GPT4O], false),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" => {
            (vec![r"\p{N}", GPT2], false)
        }
        _ => return None,
    })
}

/// How text between special tokens is turned into tokens.
enum Family {
    ByteLevel,
    /// SentencePiece: a space is prefixed to the first piece and to pieces after a special
    /// token when `add_space_prefix` (llama.cpp's rule), then spaces become `▁`.
    SentencePiece {
        add_space_prefix: bool,
    },
}

pub struct Tokenizer {
    bpe: tokenizers::Tokenizer,
    family: Family,
    /// Bytes each token stands for (byte-level characters mapped back to bytes).
    token_bytes: Vec<Vec<u8>>,
    types: Vec<TokenType>,
    /// Special tokens, longest first: llama.cpp's partition order.
    specials: Vec<(String, u32)>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub add_bos: bool,
}

/// GPT-2's byte → printable-character map, and its inverse.
fn byte_level_maps() -> (Vec<char>, HashMap<char, u8>) {
    let printable = |b: u8| {
        (b'!'..=b'~').contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut next = 256u32;
    let forward: Vec<char> = (0..=255u8)
        .map(|b| {
            if printable(b) {
                char::from(b)
            } else {
                let c = char::from_u32(next).expect("valid");
                next += 1;
                c
            }
        })
        .collect();
    let inverse = forward
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect();
    (forward, inverse)
}

fn strings(gguf: &Gguf, key: &str) -> Result<Vec<String>, TextError> {
    let arr = gguf
        .get(key)
        .and_then(MetadataValue::as_array)
        .ok_or_else(|| TextError::Missing(key.into()))?;
    arr.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| TextError::Bad(format!("{key} holds a non-string")))
        })
        .collect()
}

fn token_id(gguf: &Gguf, key: &str, n: usize) -> Option<u32> {
    gguf.get(key)
        .and_then(MetadataValue::as_u64)
        .filter(|&id| (id as usize) < n)
        .map(|id| id as u32)
}

impl Tokenizer {
    pub fn from_gguf(gguf: &Gguf) -> Result<Self, TextError> {
        let model = gguf
            .get("tokenizer.ggml.model")
            .and_then(MetadataValue::as_str)
            .ok_or_else(|| TextError::Missing("tokenizer.ggml.model".into()))?;
        if model != "gpt2" && model != "llama" {
            return Err(TextError::Unsupported(format!(
                "tokenizer model '{model}' (supported: gpt2 byte-level BPE, llama SentencePiece BPE)"
            )));
        }
        let tokens = strings(gguf, "tokenizer.ggml.tokens")?;
        if tokens.is_empty() {
            return Err(TextError::Bad("the vocabulary is empty".into()));
        }
        let n = tokens.len();
        let types: Vec<TokenType> = match gguf
            .get("tokenizer.ggml.token_type")
            .and_then(MetadataValue::as_array)
        {
            Some(t) if t.len() == n => t
                .iter()
                .map(|v| TokenType::from_id(v.as_i64().unwrap_or(1)))
                .collect(),
            Some(t) => {
                return Err(TextError::Bad(format!(
                    "{} token types for {n} tokens",
                    t.len()
                )));
            }
            None => vec![TokenType::Normal; n],
        };
        let mut vocab = tokenizers::models::bpe::Vocab::default();
        for (i, t) in tokens.iter().enumerate() {
            vocab.entry(t.clone()).or_insert(i as u32);
        }
        let (tk, family, token_bytes) = if model == "gpt2" {
            Self::byte_level(gguf, &tokens, &types, vocab)?
        } else {
            Self::sentence_piece(gguf, &tokens, &types, vocab)?
        };

        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .enumerate()
            .filter(|(i, t)| types[*i].is_special() && !t.is_empty())
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));

        let eos = token_id(gguf, "tokenizer.ggml.eos_token_id", n);
        let eot = token_id(gguf, "tokenizer.ggml.eot_token_id", n);
        Ok(Tokenizer {
            bpe: tk,
            family,
            token_bytes,
            types,
            specials,
            bos: token_id(gguf, "tokenizer.ggml.bos_token_id", n),
            eos,
            eot,
            add_bos: gguf
                .get("tokenizer.ggml.add_bos_token")
                .and_then(MetadataValue::as_bool)
                .unwrap_or(false),
        })
    }

    fn byte_level(
        gguf: &Gguf,
        tokens: &[String],
        types: &[TokenType],
        vocab: tokenizers::models::bpe::Vocab,
    ) -> Result<(tokenizers::Tokenizer, Family, Vec<Vec<u8>>), TextError> {
        let merges = match gguf.get("tokenizer.ggml.merges") {
            Some(_) => strings(gguf, "tokenizer.ggml.merges")?,
            None => Vec::new(),
        };
        let pre = gguf
            .get("tokenizer.ggml.pre")
            .and_then(MetadataValue::as_str)
            .unwrap_or("default");
        let (regexes, ignore_merges) = pre_tokenizer_rules(pre).ok_or_else(|| {
            TextError::Unsupported(format!(
                "pre-tokenizer '{pre}' (supported: default, gpt-2, llama3, dbrx, qwen2, gpt-4o, \
                 smollm)"
            ))
        })?;
        let (_, from_char) = byte_level_maps();
        let token_bytes = tokens
            .iter()
            .zip(types)
            .map(|(t, ty)| {
                if ty.is_special() {
                    t.as_bytes().to_vec()
                } else {
                    t.chars()
                        .map(|c| from_char.get(&c).copied().unwrap_or(b'?'))
                        .collect()
                }
            })
            .collect();
        // A merge that joins or yields tokens the vocabulary lacks can never apply; llama.cpp
        // skips such entries and so does Hearth (the BPE builder would reject the file).
        let mut kept = Vec::with_capacity(merges.len());
        for m in &merges {
            let (a, b) = m
                .split_once(' ')
                .ok_or_else(|| TextError::Bad(format!("merge '{m}' is not two tokens")))?;
            if vocab.contains_key(a)
                && vocab.contains_key(b)
                && vocab.contains_key(&format!("{a}{b}"))
            {
                kept.push((a.to_string(), b.to_string()));
            }
        }
        let merges = kept;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(ignore_merges)
            .build()
            .map_err(|e| TextError::Bad(format!("BPE: {e}")))?;
        let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
        for re in regexes {
            let split = Split::new(
                SplitPattern::Regex(re.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| TextError::Bad(format!("regex: {e}")))?;
            steps.push(split.into());
        }
        steps.push(
            ByteLevel::default()
                .add_prefix_space(false)
                .use_regex(false)
                .into(),
        );
        let mut tk = tokenizers::Tokenizer::new(bpe);
        tk.with_pre_tokenizer(Some(Sequence::new(steps)));
        Ok((tk, Family::ByteLevel, token_bytes))
    }

    /// SentencePiece BPE as llama.cpp runs it: adjacent pieces merge when their concatenation
    /// is a token, highest score first. Expressed as BPE merges ranked by that score.
    fn sentence_piece(
        gguf: &Gguf,
        tokens: &[String],
        types: &[TokenType],
        vocab: tokenizers::models::bpe::Vocab,
    ) -> Result<(tokenizers::Tokenizer, Family, Vec<Vec<u8>>), TextError> {
        let scores: Vec<f32> = match gguf
            .get("tokenizer.ggml.scores")
            .and_then(MetadataValue::as_array)
        {
            Some(s) if s.len() == tokens.len() => {
                s.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect()
            }
            _ => return Err(TextError::Missing("tokenizer.ggml.scores".into())),
        };
        let mut ranked: Vec<(f32, usize, usize, (String, String))> = Vec::new();
        for (id, t) in tokens.iter().enumerate() {
            if types[id] == TokenType::Byte {
                continue;
            }
            for (split, _) in t.char_indices().skip(1) {
                let (a, b) = t.split_at(split);
                if vocab.contains_key(a) && vocab.contains_key(b) {
                    ranked.push((scores[id], id, split, (a.to_string(), b.to_string())));
                }
            }
        }
        ranked.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
        let merges = ranked.into_iter().map(|r| r.3).collect();
        let has_bytes = types.contains(&TokenType::Byte);
        let mut builder = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .byte_fallback(has_bytes);
        if let Some(unk) = tokens
            .iter()
            .zip(types)
            .find(|(_, t)| **t == TokenType::Unknown)
            .map(|(s, _)| s.clone())
        {
            builder = builder.unk_token(unk);
        }
        let bpe = builder
            .build()
            .map_err(|e| TextError::Bad(format!("BPE: {e}")))?;
        let token_bytes = tokens
            .iter()
            .zip(types)
            .map(|(t, ty)| match ty {
                TokenType::Byte => {
                    u8::from_str_radix(t.trim_start_matches("<0x").trim_end_matches('>'), 16)
                        .map(|b| vec![b])
                        .unwrap_or_default()
                }
                _ if ty.is_special() => t.as_bytes().to_vec(),
                _ => t.replace('\u{2581}', " ").into_bytes(),
            })
            .collect();
        let add_space_prefix = gguf
            .get("tokenizer.ggml.add_space_prefix")
            .and_then(MetadataValue::as_bool)
            .unwrap_or(true);
        Ok((
            tokenizers::Tokenizer::new(bpe),
            Family::SentencePiece { add_space_prefix },
            token_bytes,
        ))
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// Token ids of `text`. With `parse_special`, control tokens written in the text (as chat
    /// templates write them) become single tokens; without, they are ordinary text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, TextError> {
        enum Piece<'a> {
            Text(&'a str),
            Token(u32),
        }
        let mut pieces = vec![Piece::Text(text)];
        for (special, id) in &self.specials {
            if !parse_special && self.types[*id as usize] != TokenType::UserDefined {
                continue;
            }
            let mut next = Vec::with_capacity(pieces.len());
            for piece in pieces {
                match piece {
                    Piece::Text(mut rest) => {
                        while let Some(at) = rest.find(special.as_str()) {
                            if at > 0 {
                                next.push(Piece::Text(&rest[..at]));
                            }
                            next.push(Piece::Token(*id));
                            rest = &rest[at + special.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Piece::Text(rest));
                        }
                    }
                    token => next.push(token),
                }
            }
            pieces = next;
        }
        let mut ids = Vec::new();
        let mut after_special = true;
        for piece in pieces {
            match piece {
                Piece::Token(id) => {
                    ids.push(id);
                    after_special = true;
                }
                Piece::Text(t) => {
                    let text = match self.family {
                        Family::ByteLevel => std::borrow::Cow::Borrowed(t),
                        Family::SentencePiece { add_space_prefix } => {
                            let prefix = if add_space_prefix && after_special {
                                " "
                            } else {
                                ""
                            };
                            std::borrow::Cow::Owned(format!("{prefix}{t}").replace(' ', "\u{2581}"))
                        }
                    };
                    if !text.is_empty() {
                        ids.extend_from_slice(
                            self.bpe
                                .encode(text.as_ref(), false)
                                .map_err(|e| TextError::Bad(format!("tokenizing: {e}")))?
                                .get_ids(),
                        );
                    }
                    after_special = false;
                }
            }
        }
        Ok(ids)
    }

    /// Tokens of a prompt as llama.cpp builds them: BOS when the vocabulary asks for one, then
    /// the text with control tokens recognised. A text that begins with the BOS token already
    /// (chat templates that write `bos_token`, as Gemma's does) gets no second one, as
    /// llama.cpp's chat formatting ensures.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let written = self.encode(text, true)?;
        let bos = self.add_bos.then_some(self.bos).flatten();
        let mut ids: Vec<u32> = bos
            .filter(|&b| written.first() != Some(&b))
            .into_iter()
            .collect();
        ids.extend(written);
        Ok(ids)
    }

    /// The bytes a token stands for; control tokens render as nothing.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        match self.types.get(id as usize) {
            Some(TokenType::Control) | None => &[],
            Some(_) => &self.token_bytes[id as usize],
        }
    }

    /// A token's text as written in templates (`<|im_end|>`), for display and stop lists.
    pub fn token_text(&self, id: u32) -> String {
        String::from_utf8_lossy(
            self.token_bytes
                .get(id as usize)
                .map_or(&[][..], |b| b.as_slice()),
        )
        .into_owned()
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    /// Finds a special token by its text (`<|end|>`).
    pub fn special_id(&self, text: &str) -> Option<u32> {
        self.specials
            .iter()
            .find(|(t, _)| t == text)
            .map(|&(_, id)| id)
    }

    /// Tokens that end an assistant turn: eos, eot, and the chat end markers the vocabulary has.
    pub fn end_of_turn_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = [self.eos, self.eot].into_iter().flatten().collect();
        for marker in [
            "<|im_end|>",
            "<|end|>",
            "<|endoftext|>",
            "<|eot_id|>",
            "<|end_of_text|>",
            "<end_of_turn>",
        ] {
            if let Some(id) = self.special_id(marker)
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        ids
    }

    /// `decode`, with control tokens written out (`<|tool_call|>`): what parses a reply's
    /// structure.
    pub fn decode_with_control(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        let mut run = Vec::new();
        for &id in ids {
            if self.token_type(id) == Some(TokenType::Control) {
                out.push_str(&self.decode(&std::mem::take(&mut run)));
                out.push_str(&self.token_text(id));
            } else {
                run.push(id);
            }
        }
        out + &self.decode(&run)
    }

    /// Decodes a whole text (invalid UTF-8 replaced, control tokens omitted). SentencePiece
    /// vocabularies lose the space their encoder put in front, as llama.cpp's detokenizer does.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id).iter().copied())
            .collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match self.family {
            Family::SentencePiece {
                add_space_prefix: true,
            } => text.strip_prefix(' ').map(str::to_string).unwrap_or(text),
            _ => text,
        }
    }
}
