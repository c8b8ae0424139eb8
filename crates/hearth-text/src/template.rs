//! Chat templates: the model's own Hugging Face Jinja template rendered with minijinja, or a
//! built-in Phi format when the file has none.

use crate::TextError;
use minijinja::machinery::{Token, tokenize};
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

/// Gemma (as Gemma 3's own template writes it): `<start_of_turn>user\ncontent<end_of_turn>\n`,
/// the assistant called `model`, a system message put before the first user message.
pub const GEMMA_TEMPLATE: &str = "{{ bos_token }}{% if messages and messages[0]['role'] == 'system' %}{% set prefix = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}{% for message in turns %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}{{ '<start_of_turn>' + role + '\n' + (prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}";

/// The conversation formats Hearth knows for files without a template of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinFormat {
    Phi4,
    Phi3,
    Gemma,
}

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
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid");
        if repeats_a_list(source, &syntax) {
            return Err(TextError::Template(
                "the chat template repeats a list with `*`, which chat templates never need"
                    .to_string(),
            ));
        }
        let mut env = Environment::new();
        env.set_syntax(syntax);
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

    /// A built-in template, for files without one.
    pub fn builtin(format: BuiltinFormat, bos: &str, eos: &str) -> Self {
        let source = match format {
            BuiltinFormat::Phi4 => PHI4_TEMPLATE,
            BuiltinFormat::Phi3 => PHI3_TEMPLATE,
            BuiltinFormat::Gemma => GEMMA_TEMPLATE,
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

/// Whether the template multiplies a list literal (or a name `set` to one), as in
/// `[x] * 33333338`. minijinja repeats lists lazily, up to 10^8 items, and its fuel does not
/// count the work of printing, comparing or converting the result: seconds per instruction.
fn repeats_a_list(source: &str, syntax: &SyntaxConfig) -> bool {
    let Ok(tokens) = tokenize(source, false, syntax.clone())
        .map(|t| t.map(|(token, _)| token))
        .collect::<Result<Vec<_>, _>>()
    else {
        return false; // compiling reports the error
    };
    let ends_an_operand = |t: &Token| {
        matches!(
            t,
            Token::Ident(_)
                | Token::Str(_)
                | Token::String(_)
                | Token::Int(_)
                | Token::Int128(_)
                | Token::Float(_)
                | Token::BracketClose
                | Token::ParenClose
                | Token::BraceClose
        )
    };
    // For each token, whether it closes a group whose value is a list literal: `[..]`, or
    // parentheses around one; and where a closing token's group opened.
    let mut closes_a_list = vec![false; tokens.len()];
    let mut opened_at = vec![0; tokens.len()];
    let mut open: Vec<usize> = Vec::new();
    let mut list_names: Vec<&str> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::BracketOpen | Token::ParenOpen => open.push(i),
            Token::BracketClose | Token::ParenClose => {
                let Some(start) = open.pop() else { continue };
                opened_at[i] = start;
                closes_a_list[i] = if matches!(tokens[start], Token::BracketOpen) {
                    start == 0 || !ends_an_operand(&tokens[start - 1])
                } else {
                    closes_a_list[i - 1] && opened_at[i - 1] == start + 1
                };
            }
            _ => {}
        }
        if let [
            Token::Ident("set"),
            Token::Ident(name),
            Token::Assign,
            Token::BracketOpen,
        ] = &tokens[i.saturating_sub(3)..=i]
        {
            list_names.push(name);
        }
    }
    let is_list = |i: usize| {
        closes_a_list[i] || matches!(tokens[i], Token::Ident(name) if list_names.contains(&name))
    };
    let opens_a_list = |i: usize| {
        let first = (i..tokens.len()).find(|&k| !matches!(tokens[k], Token::ParenOpen));
        first.is_some_and(|k| {
            matches!(tokens[k], Token::BracketOpen)
                || matches!(tokens[k], Token::Ident(name) if list_names.contains(&name))
        })
    };
    (1..tokens.len().saturating_sub(1))
        .any(|i| matches!(tokens[i], Token::Mul) && (is_list(i - 1) || opens_a_list(i + 1)))
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
    fn a_repeated_list_is_refused_before_rendering() {
        // Found by fuzzing: printing 33 million repeated items took seconds, unfuelled.
        for source in [
            "M->{{33333338*[na]-}}",
            "{{ [1] * 33333338 }}",
            "{{ ([1]) * 33333338 }}",
            "{{ (33333338 * ([1]))|join }}",
            "{% set x = [0] %}{{ (x * 99999999) == (x * 99999999) }}",
            "{{ 333333333 * 8 * [] }}",
            "{{ [0] * 2 ** 30 }}",
        ] {
            let err = ChatTemplate::new(source, "", "").err();
            assert!(
                err.as_ref()
                    .is_some_and(|e| e.to_string().contains("repeats a list")),
                "{source}: {err:?}"
            );
        }
        // Subscripts, strings and numbers multiply as before.
        let fine = ChatTemplate::new(
            "{{ messages[0]['content'] * 2 }}{{ '-' * 3 }}{{ (2) * 3 }}{{ [1, 2][1] * 4 }}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            fine.render(&[Message::new("user", "ab")], false).unwrap(),
            "abab---68"
        );
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
