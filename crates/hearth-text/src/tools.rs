//! Tool calls (OpenAI's `tools`): the functions a model may call, how its prompt presents
//! them (the chat template's own way where it has one, else Hearth's documented built-in),
//! the grammar that holds a call to its function's parameters, and the calls read back out of
//! a reply.

use crate::template::{ChatTemplate, Message};
use crate::{TextError, Tokenizer};
use serde_json::{Value, json};

/// A function the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// The JSON schema of its arguments (an object).
    pub parameters: Value,
}

/// Which calls the reply may or must make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// Text, or calls where the model opens one (its text stays free until then).
    Auto,
    /// Text only.
    None,
    /// One call or more, nothing else.
    Required,
    /// One call of this function, nothing else.
    Function(String),
}

/// A call the model made.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// `call_` and the call's place in the conversation, unique within it.
    pub id: String,
    pub name: String,
    /// The arguments, as a JSON text (OpenAI's shape).
    pub arguments: String,
}

impl Tool {
    /// The tools of an OpenAI `tools` array: `{type: "function", function: {name, description,
    /// parameters}}` each. A tool without a usable name, or of another type, is a bad request.
    pub fn from_openai(tools: &Value) -> Result<Vec<Tool>, TextError> {
        let bad = |why: String| TextError::BadRequest(format!("tools: {why}"));
        // The call grammar nests each tool's parameters a few levels further down.
        if crate::constraint::nesting_depth(tools) > crate::constraint::MAX_SCHEMA_DEPTH - 8 {
            return Err(bad(format!(
                "nested deeper than {} levels",
                crate::constraint::MAX_SCHEMA_DEPTH - 8
            )));
        }
        let list = tools
            .as_array()
            .ok_or_else(|| bad("expected an array".into()))?;
        let mut out: Vec<Tool> = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            if entry
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t != "function")
            {
                return Err(bad(format!("tool {i} is not of type \"function\"")));
            }
            let function = entry.get("function").unwrap_or(entry);
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
            if name.is_empty() || name.len() > 64 || !name.chars().all(valid) {
                return Err(bad(format!(
                    "tool {i} needs a name of 1 to 64 letters, digits, '_', '-' or '.'"
                )));
            }
            if out.iter().any(|t| t.name == name) {
                return Err(bad(format!("two tools are named '{name}'")));
            }
            let parameters = match function.get("parameters") {
                None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
                Some(p) if p.is_object() => p.clone(),
                Some(_) => return Err(bad(format!("'{name}': parameters must be a JSON schema"))),
            };
            let description = function.get("description").and_then(Value::as_str);
            out.push(Tool {
                name: name.to_string(),
                description: description.unwrap_or_default().to_string(),
                parameters,
            });
        }
        Ok(out)
    }

    /// The tool as OpenAI's `tools` entry (what templates that list tools read).
    pub fn to_openai(&self) -> Value {
        json!({"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters,
        }})
    }
}

impl ToolChoice {
    /// OpenAI's `tool_choice`: "auto", "none", "required", or {type: "function", function:
    /// {name}} naming one of `tools`.
    pub fn from_openai(choice: Option<&Value>, tools: &[Tool]) -> Result<ToolChoice, TextError> {
        let bad = |why: String| TextError::BadRequest(format!("tool_choice: {why}"));
        let choice = match choice {
            None | Some(Value::Null) => return Ok(ToolChoice::Auto),
            Some(Value::String(s)) => match s.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => return Err(bad(format!("'{other}' is not auto, none or required"))),
            },
            Some(v) => {
                let name = v.pointer("/function/name").and_then(Value::as_str);
                let name = name
                    .ok_or_else(|| bad("expected {type: \"function\", function: {name}}".into()))?;
                ToolChoice::Function(name.to_string())
            }
        };
        if let ToolChoice::Function(name) = &choice
            && !tools.iter().any(|t| &t.name == name)
        {
            return Err(bad(format!("no tool is named '{name}'")));
        }
        if tools.is_empty() && matches!(choice, ToolChoice::Required | ToolChoice::Function(_)) {
            return Err(bad("a call is required but no tools were given".into()));
        }
        Ok(choice)
    }
}

/// How the model's prompt presents tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presentation {
    /// The chat template lists a `tools` variable itself (Hermes, Qwen, Llama 3.1 …).
    TemplateVariable,
    /// The system message's `tools` field, as Phi-4-mini's template writes it between
    /// `<|tool|>` and `<|/tool|>`.
    SystemField,
    /// The template knows nothing of tools: Hearth's own instructions in the system message.
    BuiltIn,
}

/// What opens or closes a call: a special token of the vocabulary, or plain text.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Marker {
    Token(String),
    Text(String),
}

impl Marker {
    fn text(&self) -> &str {
        match self {
            Marker::Token(t) | Marker::Text(t) => t,
        }
    }

    /// The marker as a Lark terminal: a special token by name, or a string literal.
    fn lark(&self) -> String {
        match self {
            Marker::Token(t) => t.clone(),
            Marker::Text(t) => serde_json::to_string(t).expect("a string serializes"),
        }
    }
}

/// How one model is told about tools and writes its calls: `open`, a call (a JSON object
/// `{"name", "arguments"}`, or a list of them), `close`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolFormat {
    presentation: Presentation,
    open: Marker,
    close: Marker,
}

/// The built-in call markers, for models whose vocabulary has none.
const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

impl ToolFormat {
    /// The format `template` and the vocabulary imply.
    pub fn for_model(tokenizer: &Tokenizer, template: &ChatTemplate) -> ToolFormat {
        let source = &template.source;
        let presentation = if source.contains("<|tool|>") && source.contains("'tools'") {
            Presentation::SystemField
        } else if source.contains("tools") {
            Presentation::TemplateVariable
        } else {
            Presentation::BuiltIn
        };
        let special = |text: &str| {
            tokenizer
                .special_id(text)
                .map(|_| Marker::Token(text.into()))
        };
        match (special("<|tool_call|>"), special("<|/tool_call|>")) {
            (Some(open), Some(close)) => ToolFormat {
                presentation,
                open,
                close,
            },
            _ => ToolFormat {
                presentation,
                open: Marker::Text(OPEN.into()),
                close: Marker::Text(CLOSE.into()),
            },
        }
    }

    /// The text that opens a call in a reply (control tokens written out).
    pub fn open_text(&self) -> &str {
        self.open.text()
    }

    /// Whether calls open with a special token (which streamed text never shows).
    pub fn opens_with_token(&self) -> bool {
        matches!(self.open, Marker::Token(_))
    }

    /// The conversation as the template should see it with `tools` offered, and the `tools`
    /// variable for templates that list them. Calls of earlier assistant turns and tool
    /// results are written the way this format reads them.
    pub fn prompt(&self, tools: &[Tool], messages: &[Message]) -> (Vec<Message>, Option<Value>) {
        let listed: Vec<Value> = tools.iter().map(Tool::to_openai).collect();
        let mut out: Vec<Message> = messages.iter().map(|m| self.message(m)).collect();
        if tools.is_empty() {
            return (out, None);
        }
        match self.presentation {
            Presentation::TemplateVariable => return (out, Some(Value::Array(listed))),
            Presentation::SystemField => {
                let json = serde_json::to_string(&listed).expect("tools serialize");
                self.system(&mut out).tools = Some(json);
            }
            Presentation::BuiltIn => {
                let lines: Vec<String> = listed.iter().map(|t| spaced(&t["function"])).collect();
                let instructions = format!(
                    "You can call these functions:\n{}\nTo call one, answer with \
                     {}{{\"name\": <function name>, \"arguments\": <arguments as JSON>}}{} and \
                     nothing else.",
                    lines.join("\n"),
                    self.open.text(),
                    self.close.text()
                );
                let system = self.system(&mut out);
                system.content = match system.content.is_empty() {
                    true => instructions,
                    false => format!("{}\n\n{instructions}", system.content),
                };
            }
        }
        (out, None)
    }

    /// The conversation's system message, made first where there is none.
    fn system<'m>(&self, messages: &'m mut Vec<Message>) -> &'m mut Message {
        if messages.first().is_none_or(|m| m.role != "system") {
            messages.insert(0, Message::new("system", ""));
        }
        &mut messages[0]
    }

    /// A message as this format's prompt carries it.
    fn message(&self, m: &Message) -> Message {
        let mut m = m.clone();
        let templated = self.presentation == Presentation::TemplateVariable;
        if let Some(calls) = m.tool_calls.as_ref().filter(|_| !templated) {
            // The model's own earlier calls, as it wrote them.
            let written: Vec<String> = calls.iter().map(|c| self.write_call(c)).collect();
            m.content = [m.content.clone(), written.concat()].concat();
            m.tool_calls = None;
        }
        if m.role == "tool" && self.presentation == Presentation::BuiltIn {
            let id = m.tool_call_id.take().unwrap_or_default();
            m.role = "user".into();
            m.content = format!("The result of call {id}: {}", m.content);
        }
        m
    }

    /// A call in an OpenAI `tool_calls` entry, written as the model writes it.
    fn write_call(&self, call: &Value) -> String {
        let name = call
            .pointer("/function/name")
            .cloned()
            .unwrap_or(Value::Null);
        let arguments = match call.pointer("/function/arguments") {
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
            Some(v) => v.clone(),
            None => json!({}),
        };
        let body = json!({"name": name, "arguments": arguments});
        format!("{}{}{}", self.open.text(), spaced(&body), self.close.text())
    }

    /// The Lark grammar a reply must follow under `choice`: free text until a call opens
    /// (`Auto`), calls alone (`Required`, `Function`), text that opens no call (`None`);
    /// `None` where no tools are offered.
    pub fn grammar(&self, tools: &[Tool], choice: &ToolChoice) -> Option<String> {
        let schema = |tools: Vec<&Tool>| {
            let one = |t: &Tool| {
                json!({
                    "type": "object",
                    "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                    "required": ["name", "arguments"],
                    "additionalProperties": false
                })
            };
            let call = json!({"anyOf": tools.into_iter().map(one).collect::<Vec<_>>()});
            // A call, or a list of calls (as some models write them), spaced as `spaced`
            // writes them: free whitespace would let a model pad a call without end.
            json!({
                "anyOf": [call, {"type": "array", "items": call, "minItems": 1}],
                "x-guidance": {
                    "whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "
                }
            })
        };
        let (open, close) = (self.open.lark(), self.close.lark());
        let body = |tools| format!("call: {open} %json {} {close}\n", schema(tools));
        Some(match choice {
            _ if tools.is_empty() => return None,
            // The tools stay in the prompt (so the cached conversation stays valid), but no
            // call may open: text cannot write a special token, nor, here, the opening text.
            ToolChoice::None => match &self.open {
                Marker::Token(_) => "start: TEXT?\nTEXT: /(.|\\n)+/\n".to_string(),
                Marker::Text(_) => {
                    format!("start: TEXT\nTEXT: /(.|\\n)*/ & ~(/(.|\\n)*/ {open} /(.|\\n)*/)\n")
                }
            },
            ToolChoice::Function(name) => {
                let tool = tools.iter().filter(|t| &t.name == name).collect();
                format!("start: call\n{}", body(tool))
            }
            ToolChoice::Required => format!("start: call+\n{}", body(tools.iter().collect())),
            ToolChoice::Auto => match &self.open {
                // Text cannot write a special token: free text, then calls, is unambiguous.
                Marker::Token(_) => {
                    format!(
                        "start: TEXT? (call TEXT?)*\nTEXT: /(.|\\n)+/\n{}",
                        body(tools.iter().collect())
                    )
                }
                // Free text up to the opening marker (lazily), then a call, any number of times.
                Marker::Text(_) => format!(
                    "start: call* TEXT\nTEXT: /(.|\\n)*/\ncall_hd[lazy]: TEXT {open}\ncall: call_hd \
                     %json {} {close}\n",
                    schema(tools.iter().collect())
                ),
            },
        })
    }

    /// The reply's text before its first call, and its calls (`first_id` numbers them).
    /// Text that is not a well-formed call stays text.
    pub fn parse(&self, reply: &str, first_id: usize) -> (String, Vec<ToolCall>) {
        let (open, close) = (self.open.text(), self.close.text());
        let Some(start) = reply.find(open) else {
            return (reply.to_string(), Vec::new());
        };
        let mut calls = Vec::new();
        let mut rest = &reply[start..];
        while let Some(after) = rest.strip_prefix(open) {
            let Some(end) = after.find(close) else { break };
            // Arguments as the model wrote them (numbers beyond f64 stay exact).
            let body = after[..end].trim();
            let list: Vec<WrittenCall> = match serde_json::from_str::<Vec<WrittenCall>>(body) {
                Ok(list) => list,
                Err(_) => match serde_json::from_str::<WrittenCall>(body) {
                    Ok(one) => vec![one],
                    Err(_) => return (reply.to_string(), Vec::new()),
                },
            };
            for call in list {
                calls.push(ToolCall {
                    id: format!("call_{}", first_id + calls.len()),
                    name: call.name,
                    arguments: call
                        .arguments
                        .map_or_else(|| "{}".to_string(), |a| a.get().to_string()),
                });
            }
            rest = after[end + close.len()..].trim_start();
        }
        (reply[..start].trim_end().to_string(), calls)
    }
}

/// A call as a model writes it: `{"name": …, "arguments": {…}}`.
#[derive(serde::Deserialize)]
struct WrittenCall {
    name: String,
    arguments: Option<Box<serde_json::value::RawValue>>,
}

/// JSON with a space after each `,` and `:`, as Python's `json.dumps` writes it (and so the
/// calls in models' training data).
fn spaced(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(spaced).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), spaced(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        scalar => scalar.to_string(),
    }
}

/// One request's tools for one model: the prompt that offers them, the grammar the reply
/// follows, and the calls read back out of it.
#[derive(Clone, Debug)]
pub struct ToolUse {
    pub tools: Vec<Tool>,
    pub choice: ToolChoice,
    pub format: ToolFormat,
}

impl ToolUse {
    /// OpenAI's `tools` and `tool_choice` for this model; no tools offer none.
    pub fn from_openai(
        tools: Option<&Value>,
        choice: Option<&Value>,
        tokenizer: &Tokenizer,
        template: &ChatTemplate,
    ) -> Result<ToolUse, TextError> {
        let tools = match tools {
            Some(tools) => Tool::from_openai(tools)?,
            None => Vec::new(),
        };
        let choice = ToolChoice::from_openai(choice, &tools)?;
        let format = ToolFormat::for_model(tokenizer, template);
        Ok(ToolUse {
            tools,
            choice,
            format,
        })
    }

    /// Whether the reply may call a tool.
    pub fn calls_possible(&self) -> bool {
        !self.tools.is_empty() && self.choice != ToolChoice::None
    }

    /// The prompt text of `messages` (earlier calls and results among them), with the tools
    /// offered and the assistant's turn opened.
    pub fn render(
        &self,
        template: &ChatTemplate,
        messages: &[Message],
    ) -> Result<String, TextError> {
        let (messages, listed) = self.format.prompt(&self.tools, messages);
        template.render_with_tools(&messages, listed.as_ref(), true)
    }

    /// The Lark grammar the reply follows, if calls constrain it (`ToolFormat::grammar`).
    pub fn grammar(&self) -> Option<String> {
        self.format.grammar(&self.tools, &self.choice)
    }

    /// What opens a call in a reply, where the reply may make one.
    pub fn calls_open(&self) -> Option<&str> {
        self.calls_possible().then(|| self.format.open_text())
    }

    /// The reply's text before its calls, and the calls, numbered after those of `earlier`.
    /// `reply` is the reply's text with control tokens written out.
    pub fn read_reply(&self, reply: &str, earlier: &[Message]) -> (String, Vec<ToolCall>) {
        let made = earlier
            .iter()
            .filter_map(|m| m.tool_calls.as_ref())
            .map(Vec::len)
            .sum();
        self.format.parse(reply, made)
    }
}

impl ToolCall {
    /// The call as an OpenAI `tool_calls` entry.
    pub fn to_openai(&self) -> Value {
        json!({"id": self.id, "type": "function",
            "function": {"name": self.name, "arguments": self.arguments}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> Vec<Tool> {
        Tool::from_openai(&json!([{"type": "function", "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }}]))
        .unwrap()
    }

    fn builtin() -> ToolFormat {
        ToolFormat {
            presentation: Presentation::BuiltIn,
            open: Marker::Text(OPEN.into()),
            close: Marker::Text(CLOSE.into()),
        }
    }

    #[test]
    fn calls_are_read_back_with_their_arguments_as_the_model_wrote_them() {
        let reply = "Let me look.\n<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"id\": 507575078858507550001}}</tool_call>\n<tool_call>[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Bergen\"}}]</tool_call>";
        let (content, calls) = builtin().parse(reply, 3);
        assert_eq!(content, "Let me look.");
        let got: Vec<(&str, &str, &str)> = calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "call_3",
                    "get_weather",
                    "{\"city\": \"Oslo\", \"id\": 507575078858507550001}"
                ),
                ("call_4", "get_weather", "{\"city\": \"Bergen\"}")
            ]
        );
        // Not a call: text as it was.
        let (content, calls) = builtin().parse("<tool_call>not json</tool_call>", 0);
        assert_eq!(
            (content.as_str(), calls.len()),
            ("<tool_call>not json</tool_call>", 0)
        );
    }

    #[test]
    fn bad_tools_and_choices_are_bad_requests() {
        for (tools, needle) in [
            (json!({"name": "x"}), "expected an array"),
            (
                json!([{"type": "function", "function": {"description": "no name"}}]),
                "needs a name",
            ),
            (json!([{"type": "retrieval"}]), "not of type"),
            (json!([{"function": {"name": "a b"}}]), "needs a name"),
            (
                json!([{"function": {"name": "a"}}, {"function": {"name": "a"}}]),
                "two tools",
            ),
        ] {
            let err = Tool::from_openai(&tools).unwrap_err();
            assert_eq!(err.code(), "bad-request");
            assert!(err.to_string().contains(needle), "{err}");
        }
        let tools = weather();
        let named = json!({"type": "function", "function": {"name": "nope"}});
        assert!(ToolChoice::from_openai(Some(&named), &tools).is_err());
        assert!(ToolChoice::from_openai(Some(&json!("sometimes")), &tools).is_err());
        assert_eq!(
            ToolChoice::from_openai(None, &tools).unwrap(),
            ToolChoice::Auto
        );
    }

    #[test]
    fn the_built_in_prompt_lists_tools_and_writes_earlier_calls_as_the_model_does() {
        let call = json!({"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}});
        let messages = vec![
            Message::new("user", "Weather?"),
            Message {
                tool_calls: Some(vec![call]),
                ..Message::new("assistant", "")
            },
            Message {
                tool_call_id: Some("call_0".into()),
                ..Message::new("tool", "sunny")
            },
        ];
        let (prompt, variable) = builtin().prompt(&weather(), &messages);
        assert_eq!(variable, None);
        assert_eq!(prompt[0].role, "system");
        assert!(
            prompt[0].content.contains("\"name\": \"get_weather\"")
                && prompt[0].content.contains(OPEN)
        );
        assert_eq!(
            prompt[2].content,
            "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}</tool_call>"
        );
        assert_eq!(
            (prompt[3].role.as_str(), prompt[3].content.as_str()),
            ("user", "The result of call call_0: sunny")
        );
    }
}
