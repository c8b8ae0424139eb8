//! Chat templates: the model's own Hugging Face Jinja template rendered with minijinja, or a
//! built-in Phi format when the file has none.

use crate::TextError;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

/// A message of a conversation, as chat templates read it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
    /// An assistant turn's calls, in OpenAI's shape (`{id, type, function: {name, arguments}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<serde_json::Value>>,
    /// The call a tool result answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The tools offered, as JSON, in the system message of templates that read them there
    /// (Phi-4-mini).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<String>,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
            ..Default::default()
        }
    }
}

/// Phi-4 (14B, reasoning): `<|im_start|>role<|im_sep|>content<|im_end|>`.
pub const PHI4_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}";

/// Phi-4-mini and Phi-3/3.5: `<|role|>content<|end|>`.
pub const PHI3_TEMPLATE: &str = "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

/// Instructions a template may run per rendering. Real chat templates use a few dozen per
/// message; this allows thousands of messages and stops an endless template in well under a second.
const TEMPLATE_FUEL: u64 = 5_000_000;

pub struct ChatTemplate {
    env: Environment<'static>,
    pub source: String,
    bos: String,
    eos: String,
}

fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

impl ChatTemplate {
    /// Compiles `source` as transformers does: blocks trimmed, Python string methods available.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<Self, TextError> {
        let mut env = Environment::new();
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        // The template comes from the file: a hostile one must not hang the page.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| TextError::Template(format!("the chat template does not compile: {e}")))?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            bos: bos.to_string(),
            eos: eos.to_string(),
        })
    }

    /// The built-in template matching the vocabulary's markers, for files without one.
    pub fn fallback_for(has_im_sep: bool, bos: &str, eos: &str) -> Self {
        let source = if has_im_sep {
            PHI4_TEMPLATE
        } else {
            PHI3_TEMPLATE
        };
        ChatTemplate::new(source, bos, eos).expect("built-in templates compile")
    }

    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, TextError> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// `render`, with the `tools` variable templates that list tools read (`ToolFormat::prompt`
    /// says which).
    pub fn render_with_tools(
        &self,
        messages: &[Message],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String, TextError> {
        let template = self.env.get_template("chat").expect("added in new");
        template
            .render(minijinja::context! {
                messages => Value::from(Serde(messages)),
                tools => tools.map(|t| Value::from(Serde(t))),
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos.as_str(),
                eos_token => self.eos.as_str(),
            })
            .map_err(|e| TextError::Template(format!("rendering the chat template failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation() -> Vec<Message> {
        vec![
            Message::new("system", "Be brief."),
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello."),
            Message::new("user", "Bye"),
        ]
    }

    #[test]
    fn an_endless_template_stops_with_an_error() {
        let endless = ChatTemplate::new(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = endless.render(&conversation(), true).unwrap_err();
        assert!(
            err.to_string()
                .contains("rendering the chat template failed"),
            "{err}"
        );
        assert!(
            started.elapsed().as_secs() < 10,
            "stopped by its fuel, not by running 10^10 steps"
        );
    }

    #[test]
    fn runaway_string_growth_is_refused() {
        let huge = ChatTemplate::new("{{ 'x' * 100000000000 }}", "", "").unwrap();
        assert!(huge.render(&conversation(), true).is_err());
    }

    #[test]
    fn runaway_sequence_repetition_is_refused() {
        // Found by fuzzing: minijinja 2 looped once per repetition even of an empty list,
        // outside the fuel's reach; 3 returns at once and refuses huge repeated sequences.
        let started = std::time::Instant::now();
        let empty = ChatTemplate::new("{{ 333333333 * 8 * [] }}", "", "").unwrap();
        assert_eq!(empty.render(&conversation(), true).unwrap(), "[]");
        let huge = ChatTemplate::new("{{ [0] * 2 ** 30 }}", "", "").unwrap();
        assert!(huge.render(&conversation(), true).is_err());
        assert!(started.elapsed().as_secs() < 5);
    }

    #[test]
    fn a_long_real_conversation_fits_in_the_fuel() {
        let messages: Vec<Message> = (0..5000)
            .map(|i| Message::new(if i % 2 == 0 { "user" } else { "assistant" }, "some words"))
            .collect();
        let out = ChatTemplate::new(PHI4_TEMPLATE, "", "")
            .unwrap()
            .render(&messages, true)
            .unwrap();
        assert_eq!(out.matches("<|im_end|>").count(), 5000);
    }
}
