//! Text in and out of a model, from the GGUF file alone: the tokenizer, a streaming
//! detokenizer, and the chat template.

pub mod constraint;
pub mod stream;
pub mod template;
pub mod tokenizer;
pub mod tools;

pub use constraint::{Constraint, Format, Grammars, TokenMask};
pub use stream::StreamDecoder;
pub use template::{BuiltinFormat, ChatTemplate, Message};
pub use tokenizer::{TokenType, Tokenizer};
pub use tools::{Tool, ToolCall, ToolChoice, ToolFormat, ToolUse};

use hearth_gguf::{Gguf, MetadataValue};

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("the model file has no '{0}'; it carries no usable tokenizer")]
    Missing(String),
    #[error("the model's tokenizer is malformed: {0}")]
    Bad(String),
    #[error("unsupported {0}")]
    Unsupported(String),
    #[error("{0}")]
    Template(String),
    /// A request the caller made that cannot be met: an output format that does not compile.
    #[error("{0}")]
    BadRequest(String),
}

impl TextError {
    /// A short, stable name for the kind of error (the JS API's `HearthError.code`).
    pub fn code(&self) -> &'static str {
        match self {
            TextError::Missing(_) | TextError::Bad(_) => "bad-model",
            TextError::Unsupported(_) => "unsupported-model",
            TextError::Template(_) => "template",
            TextError::BadRequest(_) => "bad-request",
        }
    }
}

/// The model's chat template, or the built-in format its vocabulary's markers imply (Gemma's
/// turns, Phi-4's `<|im_sep|>`, else Phi-3's).
pub fn chat_template(gguf: &Gguf, tokenizer: &Tokenizer) -> Result<ChatTemplate, TextError> {
    let text = |id: Option<u32>| id.map(|i| tokenizer.token_text(i)).unwrap_or_default();
    let (bos, eos) = (text(tokenizer.bos), text(tokenizer.eos));
    match gguf
        .get("tokenizer.chat_template")
        .and_then(MetadataValue::as_str)
    {
        Some(source) => ChatTemplate::new(source, &bos, &eos),
        None => {
            let format = if tokenizer.special_id("<start_of_turn>").is_some() {
                BuiltinFormat::Gemma
            } else if tokenizer.special_id("<|im_sep|>").is_some() {
                BuiltinFormat::Phi4
            } else {
                BuiltinFormat::Phi3
            };
            Ok(ChatTemplate::builtin(format, &bos, &eos))
        }
    }
}
