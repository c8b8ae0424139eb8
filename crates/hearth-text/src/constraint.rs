//! Structured output: what a reply may look like (a JSON schema, any JSON object, a regular
//! expression, a Lark grammar), enforced token by token. llguidance compiles the format and,
//! at each step, says which tokens keep the reply on it; the engine applies that on the GPU.

use crate::{TextError, TokenType, Tokenizer};
use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};
use std::sync::Arc;

/// The shape a reply must have.
#[derive(Clone, Debug, PartialEq)]
pub enum Format {
    /// JSON valid against this JSON Schema (the keywords llguidance supports; any other is an
    /// error that names it).
    JsonSchema(serde_json::Value),
    /// Any JSON object.
    JsonObject,
    /// Text that the regular expression matches whole.
    Regex(String),
    /// Text in a Lark grammar (llguidance's dialect: `%json { … }` embeds a JSON schema).
    Lark(String),
}

/// The tokenizer as llguidance sees it: every token's bytes (special tokens marked as such),
/// and tokenization by Hearth's own tokenizer.
struct Vocabulary {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for Vocabulary {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        self.tokenizer
            .encode(&String::from_utf8_lossy(s), false)
            .unwrap_or_default()
    }
}

/// Compiles formats into constraints for one tokenizer; made once per model (building the
/// token trie walks the whole vocabulary).
pub struct Grammars {
    factory: ParserFactory,
    n_vocab: usize,
}

impl Grammars {
    /// For `tokenizer` and a model of `n_vocab` logits (which may exceed the tokenizer's
    /// tokens: those are never allowed).
    pub fn new(tokenizer: Arc<Tokenizer>, n_vocab: usize) -> Result<Self, TextError> {
        let words: Vec<Vec<u8>> = (0..n_vocab as u32)
            .map(|id| {
                if id as usize >= tokenizer.vocab_size() {
                    return Vec::new();
                }
                match tokenizer.token_type(id) {
                    // Control tokens are written whole, never spelled out by text.
                    Some(TokenType::Control | TokenType::Unknown | TokenType::Unused) => [
                        &[TokTrie::SPECIAL_TOKEN_MARKER],
                        tokenizer.token_text(id).as_bytes(),
                    ]
                    .concat(),
                    _ => tokenizer.token_bytes(id).to_vec(),
                }
            })
            .collect();
        let eos = tokenizer.eot.or(tokenizer.eos).unwrap_or(0);
        let info = TokRxInfo {
            vocab_size: n_vocab as u32,
            tok_eos: eos,
            tok_bos: tokenizer.bos,
            tok_pad: None,
            tok_unk: None,
            tok_end_of_turn: tokenizer.eot,
        };
        let trie = TokTrie::from(&info, &words);
        let env: TokEnv = Arc::new(Vocabulary { trie, tokenizer });
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| TextError::Bad(format!("building the grammar vocabulary: {e}")))?;
        factory.quiet();
        // llguidance's default limits (lexer fuel and parser items per step, lexer states,
        // grammar size) bound every step's work: a format that would exceed them fails with a
        // bad request rather than stall decoding. Compiling is bounded by MAX_FORMAT_BYTES.
        Ok(Grammars { factory, n_vocab })
    }

    /// A constraint holding a reply to `format`, from its first token. A format llguidance
    /// cannot compile (a schema keyword it does not support, a grammar's syntax error, a
    /// regular expression it cannot read) is a `bad-request` error with its message.
    pub fn constrain(&self, format: &Format) -> Result<Constraint, TextError> {
        let source_bytes = match format {
            Format::JsonSchema(schema) => {
                if nesting_depth(schema) > MAX_SCHEMA_DEPTH {
                    return Err(TextError::BadRequest(format!(
                        "the response format's JSON schema nests deeper than {MAX_SCHEMA_DEPTH} levels"
                    )));
                }
                serde_json::to_string(schema).map_or(0, |s| s.len())
            }
            Format::JsonObject => 0,
            Format::Regex(source) | Format::Lark(source) => source.len(),
        };
        if source_bytes > MAX_FORMAT_BYTES {
            return Err(TextError::BadRequest(format!(
                "the response format is {source_bytes} bytes; at most {MAX_FORMAT_BYTES} are accepted"
            )));
        }
        let grammar = match format {
            Format::JsonSchema(schema) => TopLevelGrammar::from_json_schema(compact(schema)),
            Format::JsonObject => {
                TopLevelGrammar::from_json_schema(compact(&serde_json::json!({"type": "object"})))
            }
            Format::Regex(rx) => TopLevelGrammar::from_regex(rx),
            Format::Lark(lark) => TopLevelGrammar::from_lark(lark.clone()),
        };
        let parser = self.factory.create_parser(grammar);
        let matcher = Matcher::new(parser);
        if let Some(e) = matcher.get_error() {
            let what = match format {
                Format::JsonSchema(_) | Format::JsonObject => "JSON schema",
                Format::Regex(_) => "regular expression",
                Format::Lark(_) => "grammar",
            };
            return Err(TextError::BadRequest(format!(
                "the response format's {what} cannot be used: {}",
                first_line(&e)
            )));
        }
        Ok(Constraint {
            matcher,
            n_vocab: self.n_vocab,
        })
    }
}

/// llguidance compiles schemas recursively: far deeper ones overflow a wasm worker's stack
/// (a trap, not an error). Real schemas stay well inside this.
pub const MAX_SCHEMA_DEPTH: usize = 100;

/// Compiling grows faster than the format's size: a megabyte of grammar compiles in about a
/// second, ten take minutes and then overrun llguidance's symbol table.
pub const MAX_FORMAT_BYTES: usize = 1 << 20;

/// How deeply a JSON value nests (a scalar 0, `{}` or `[]` 1), counted without recursion so
/// that counting cannot overflow either.
pub fn nesting_depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut open = vec![(value, 0)];
    while let Some((value, depth)) = open.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        if deepest > MAX_SCHEMA_DEPTH {
            break;
        }
        open.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

/// A schema with llguidance's compact JSON (no free whitespace between tokens), unless the
/// schema says otherwise: a reply cannot run on in spaces.
fn compact(schema: &serde_json::Value) -> serde_json::Value {
    let mut schema = schema.clone();
    if let Some(object) = schema.as_object_mut() {
        let options = object
            .entry("x-guidance")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(options) = options.as_object_mut() {
            options.entry("whitespace_flexible").or_insert(false.into());
        }
    }
    schema
}

/// llguidance's errors carry the parser state after their first line; the first says it.
fn first_line(e: &str) -> String {
    e.lines().next().unwrap_or(e).to_string()
}

/// A reply on its way: what may come next, given what came so far.
#[derive(Clone)]
pub struct Constraint {
    matcher: Matcher,
    n_vocab: usize,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("complete", &self.is_complete())
            .finish()
    }
}

/// The tokens allowed next: a bit per token of the vocabulary, 32 to a word (token t is bit
/// t % 32 of word t / 32).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenMask {
    pub words: Vec<u32>,
    /// The one token allowed, where only one is: it needs no sampling.
    pub only: Option<u32>,
}

impl TokenMask {
    /// Whether no token at all is allowed.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    pub fn allows(&self, token: u32) -> bool {
        self.words
            .get(token as usize / 32)
            .is_some_and(|w| w >> (token % 32) & 1 == 1)
    }
}

impl Constraint {
    /// Whether the reply is complete and nothing more may be written.
    pub fn is_complete(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// The tokens that keep the reply on its format; where it may end here, `stops` (the
    /// model's end-of-turn tokens) too, and no other way of ending.
    pub fn allowed(&mut self, stops: &[u32]) -> Result<TokenMask, TextError> {
        let mut mask = self.matcher.compute_mask().map_err(|e| grammar_error(&e))?;
        let eos = self
            .matcher
            .tok_env()
            .map_err(|e| grammar_error(&e))?
            .tok_trie()
            .eos_token();
        if !stops.contains(&eos) {
            mask.disallow_token(eos);
        }
        if self.matcher.is_accepting().map_err(|e| grammar_error(&e))? {
            for &stop in stops.iter().filter(|&&t| (t as usize) < self.n_vocab) {
                mask.allow_token(stop);
            }
        }
        let mut words = mask.as_slice().to_vec();
        words.resize(self.n_vocab.div_ceil(32), 0);
        let only = match mask.num_set() {
            1 => mask.first_bit_set().map(|t| t as u32),
            _ => None,
        };
        Ok(TokenMask { words, only })
    }

    /// Moves past `token`, which `allowed` allowed.
    pub fn commit(&mut self, token: u32) -> Result<(), TextError> {
        self.matcher
            .consume_token(token)
            .map_err(|e| grammar_error(&e))
    }
}

fn grammar_error(e: &impl std::fmt::Display) -> TextError {
    TextError::BadRequest(format!(
        "the output format failed: {}",
        first_line(&e.to_string())
    ))
}
