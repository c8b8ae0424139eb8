//! Structured output: replies held to a format on every token. Random-weight fixture models
//! never write valid JSON by chance; at temperature 1, over several seeds, whatever they write
//! under a constraint must parse and validate — checked by the `jsonschema` crate, not by the
//! code that enforced it.

use hearth_engine::{
    FinishReason, Flow, GenerateOptions, Generated, Gpu, Model, SamplingParams, Session, generate,
};
use hearth_gguf::{SliceSource, read_header};
use hearth_text::{Format, Grammars, Message, Tokenizer, ToolUse};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

struct Fixture {
    model: Arc<Model>,
    tokenizer: Arc<Tokenizer>,
    grammars: Grammars,
}

fn load(file: &str) -> Fixture {
    pollster::block_on(async {
        let bytes = std::fs::read(fixtures().join(file)).unwrap();
        let source = SliceSource(&bytes);
        let gguf = read_header(&source).await.unwrap();
        let gpu = Arc::new(Gpu::new().await.unwrap());
        let model = Arc::new(
            Model::load(gpu, &gguf, &source, &mut |_, _| {})
                .await
                .unwrap(),
        );
        let tokenizer = Arc::new(Tokenizer::from_gguf(&gguf).unwrap());
        let grammars = Grammars::new(tokenizer.clone(), model.config.n_vocab).unwrap();
        Fixture {
            model,
            tokenizer,
            grammars,
        }
    })
}

/// A reply of at most `max_tokens` to a fixed prompt, in `format`, sampled as `sampling` says.
struct Reply<'a> {
    format: &'a Format,
    sampling: SamplingParams,
    max_tokens: usize,
}

impl Fixture {
    fn reply(&self, r: Reply) -> Generated {
        let constraint = self.grammars.constrain(r.format).unwrap();
        let mut session = pollster::block_on(Session::new(self.model.clone(), Some(1024))).unwrap();
        let prompt: Vec<u32> = vec![72, 101, 108, 108, 111, 58, 32];
        let options = GenerateOptions {
            max_tokens: r.max_tokens,
            sampling: r.sampling,
            stop_tokens: self.tokenizer.end_of_turn_ids(),
            constraint: Some(constraint),
            ..Default::default()
        };
        let tok = &self.tokenizer;
        pollster::block_on(generate(
            &mut session,
            tok,
            &prompt,
            &options,
            &mut |_, _| Flow::Continue,
        ))
        .unwrap()
    }
}

/// Temperature 1 and nothing cut from the distribution, or llama.cpp's default cut-offs.
fn sampled(seed: u64, pure: bool) -> SamplingParams {
    match pure {
        true => SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed,
            ..Default::default()
        },
        false => SamplingParams {
            temperature: 1.0,
            seed,
            ..Default::default()
        },
    }
}

/// Objects in an array, enums, a pattern, number ranges, a nullable field, a boolean.
fn nested_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "people": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "pattern": "^[A-Z][a-z]{1,8}$"},
                        "age": {"type": "integer", "minimum": 0, "maximum": 120},
                        "role": {"enum": ["admin", "user", "guest"]},
                        "score": {"type": "number", "minimum": -1, "maximum": 1},
                        "email": {"type": ["string", "null"], "maxLength": 12}
                    },
                    "required": ["name", "age", "role", "score", "email"],
                    "additionalProperties": false
                },
                "minItems": 1,
                "maxItems": 3
            },
            "active": {"type": "boolean"},
            "id": {"$ref": "#/$defs/id"}
        },
        "required": ["people", "active", "id"],
        "additionalProperties": false,
        "$defs": {"id": {"type": "string", "pattern": "^[0-9]{4}-[a-f]{2}$"}}
    })
}

#[test]
fn json_schema_replies_validate_at_temperature_one() {
    let schema = nested_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let format = Format::JsonSchema(schema.clone());
    for file in ["tiny-q8_0.gguf", "tiny-q4_k_m.gguf"] {
        let fixture = load(file);
        for (seed, pure) in [(1, true), (2, true), (3, false), (4, false), (5, true)] {
            let reply = fixture.reply(Reply {
                format: &format,
                sampling: sampled(seed, pure),
                max_tokens: 600,
            });
            let what = format!("{file}, seed {seed}: {:?}", reply.text);
            assert_eq!(reply.finish, FinishReason::Stop, "{what}");
            let value: Value = serde_json::from_str(&reply.text).expect(&what);
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{what}: {errors:?}");
        }
        // Greedy too.
        let reply = fixture.reply(Reply {
            format: &format,
            sampling: SamplingParams::greedy(),
            max_tokens: 600,
        });
        assert!(
            validator.is_valid(&serde_json::from_str(&reply.text).unwrap()),
            "{:?}",
            reply.text
        );
    }
}

#[test]
fn any_json_object_a_regex_and_a_lark_grammar() {
    let fixture = load("tiny-q5_k_m.gguf");
    for seed in 1..=3 {
        let object = fixture.reply(Reply {
            format: &Format::JsonObject,
            sampling: sampled(seed, false),
            max_tokens: 400,
        });
        let value: Value = serde_json::from_str(&object.text).expect(&object.text);
        assert!(value.is_object(), "{value}");

        let regex = Format::Regex("[0-9]{3}-(red|green)-[a-z]{2,4}".into());
        let text = fixture
            .reply(Reply {
                format: &regex,
                sampling: sampled(seed, true),
                max_tokens: 100,
            })
            .text;
        let re = regex_lite(&text);
        assert!(re, "{text:?}");

        let lark = Format::Lark(
            "start: greeting \" \" NAME \"!\"\ngreeting: \"hi\" | \"hello\"\nNAME: /[A-Z][a-z]+/"
                .into(),
        );
        let text = fixture
            .reply(Reply {
                format: &lark,
                sampling: sampled(seed, true),
                max_tokens: 100,
            })
            .text;
        let (greeting, rest) = text.split_once(' ').expect(&text);
        assert!(["hi", "hello"].contains(&greeting), "{text:?}");
        let name = rest.strip_suffix('!').expect(&text);
        assert!(
            name.len() >= 2 && name.chars().next().unwrap().is_ascii_uppercase(),
            "{text:?}"
        );
        assert!(
            name.chars().skip(1).all(|c| c.is_ascii_lowercase()),
            "{text:?}"
        );
    }
}

/// `[0-9]{3}-(red|green)-[a-z]{2,4}`, matched by hand.
fn regex_lite(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 3
        && parts[0].chars().all(|c| c.is_ascii_digit())
        && ["red", "green"].contains(&parts[1])
        && (2..=4).contains(&parts[2].len())
        && parts[2].chars().all(|c| c.is_ascii_lowercase())
}

#[test]
fn constrained_greedy_takes_the_best_allowed_token_at_every_step() {
    // Replayed on the CPU: each step's logits (all of them, read back), the constraint's mask
    // after the tokens before it, and the best allowed token must be the one chosen.
    let fixture = load("tiny-q4_0.gguf");
    let format = Format::JsonSchema(nested_schema());
    let reply = fixture.reply(Reply {
        format: &format,
        sampling: SamplingParams::greedy(),
        max_tokens: 40,
    });
    let prompt: Vec<u32> = vec![72, 101, 108, 108, 111, 58, 32];
    let mut constraint = fixture.grammars.constrain(&format).unwrap();
    let stops = fixture.tokenizer.end_of_turn_ids();
    let n_vocab = fixture.model.config.n_vocab;
    let mut chosen_freely = 0;
    for (i, &token) in reply.tokens.iter().enumerate() {
        let mask = constraint.allowed(&stops).unwrap();
        assert!(mask.allows(token), "step {i}: token {token} is not allowed");
        if mask.only.is_none() {
            let fed = [&prompt[..], &reply.tokens[..i]].concat();
            let mut session =
                pollster::block_on(Session::new(fixture.model.clone(), Some(1024))).unwrap();
            let logits = pollster::block_on(session.logits(&fed)).unwrap();
            let last = &logits[logits.len() - n_vocab..];
            let best = (0..n_vocab as u32)
                .filter(|&t| mask.allows(t))
                .max_by(|&a, &b| {
                    last[a as usize]
                        .total_cmp(&last[b as usize])
                        .then(b.cmp(&a))
                })
                .unwrap();
            assert_eq!(token, best, "step {i}");
            chosen_freely += 1;
        }
        constraint.commit(token).unwrap();
    }
    assert!(
        chosen_freely >= 5,
        "only {chosen_freely} steps had a choice"
    );
}

#[test]
fn tokens_the_format_forces_need_no_choice_and_the_reply_ends_with_it() {
    let fixture = load("tiny-q8_0.gguf");
    let format = Format::Regex("hello, world".into());
    let reply = fixture.reply(Reply {
        format: &format,
        sampling: sampled(9, true),
        max_tokens: 50,
    });
    assert_eq!(
        (reply.text.as_str(), reply.finish),
        ("hello, world", FinishReason::Stop)
    );
}

#[test]
fn a_reply_cut_short_is_partial_and_says_so() {
    let fixture = load("tiny-q8_0.gguf");
    let format = Format::JsonSchema(nested_schema());
    let reply = fixture.reply(Reply {
        format: &format,
        sampling: sampled(1, true),
        max_tokens: 12,
    });
    assert_eq!(reply.finish, FinishReason::Length);
    assert_eq!(reply.tokens.len(), 12);
    assert!(reply.text.starts_with("{\"people\":["), "{:?}", reply.text);
}

#[test]
fn formats_that_cannot_be_used_are_bad_requests_naming_why() {
    let fixture = load("tiny-q8_0.gguf");
    let cases = [
        (
            Format::JsonSchema(json!({"type": "array", "uniqueItems": true})),
            "uniqueItems",
        ),
        (Format::JsonSchema(json!({"type": "strng"})), "strng"),
        (
            Format::JsonSchema(json!({"$ref": "#/$defs/missing"})),
            "missing",
        ),
        (Format::Regex("(unclosed".into()), "regular expression"),
        (Format::Lark("start: \"x\" ( y".into()), "grammar"),
    ];
    for (format, names) in cases {
        let err = fixture
            .grammars
            .constrain(&format)
            .err()
            .unwrap_or_else(|| panic!("{format:?} accepted"));
        assert_eq!(err.code(), "bad-request", "{format:?}");
        assert!(err.to_string().contains(names), "{format:?}: {err}");
    }
    // And the engine goes on as before.
    let reply = fixture.reply(Reply {
        format: &Format::JsonObject,
        sampling: sampled(2, false),
        max_tokens: 300,
    });
    assert!(
        serde_json::from_str::<Value>(&reply.text).is_ok(),
        "{:?}",
        reply.text
    );
}

/// A weather lookup and a sum, in OpenAI's `tools` shape.
fn tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "maxLength": 10},
                    "unit": {"enum": ["celsius", "fahrenheit"]}
                },
                "required": ["city", "unit"],
                "additionalProperties": false
            }
        }},
        {"type": "function", "function": {
            "name": "add",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
                "additionalProperties": false
            }
        }}
    ])
}

#[test]
fn tool_calls_name_a_tool_and_their_arguments_validate() {
    let bytes = std::fs::read(fixtures().join("tiny-q8_0.gguf")).unwrap();
    let gguf = pollster::block_on(read_header(&SliceSource(&bytes))).unwrap();
    let fixture = load("tiny-q8_0.gguf");
    let template = hearth_text::chat_template(&gguf, &fixture.tokenizer).unwrap();
    let offered = tools();
    let validators: Vec<(String, jsonschema::Validator)> = offered
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let f = &t["function"];
            let v = jsonschema::validator_for(&f["parameters"]).unwrap();
            (f["name"].as_str().unwrap().to_string(), v)
        })
        .collect();
    let earlier = [Message::new("user", "What is the weather in Oslo?")];
    let add = json!({"type": "function", "function": {"name": "add"}});
    for (choice, only) in [(json!("required"), None), (add, Some("add"))] {
        let uses =
            ToolUse::from_openai(Some(&offered), Some(&choice), &fixture.tokenizer, &template)
                .unwrap();
        let lark = uses.grammar().expect("calls are constrained");
        let constraint = fixture.grammars.constrain(&Format::Lark(lark)).unwrap();
        let prompt = fixture
            .tokenizer
            .encode_prompt(&uses.render(&template, &earlier).unwrap())
            .unwrap();
        for seed in 1..=3 {
            let mut session =
                pollster::block_on(Session::new(fixture.model.clone(), Some(1024))).unwrap();
            let options = GenerateOptions {
                max_tokens: 300,
                sampling: sampled(seed, false),
                stop_tokens: fixture.tokenizer.end_of_turn_ids(),
                constraint: Some(constraint.clone()),
                calls_open: uses.calls_open().map(str::to_string),
                ..Default::default()
            };
            let mut streamed = String::new();
            let reply = pollster::block_on(generate(
                &mut session,
                &fixture.tokenizer,
                &prompt,
                &options,
                &mut |text, _| {
                    streamed.push_str(text);
                    Flow::Continue
                },
            ))
            .unwrap();
            let what = format!("{choice}, seed {seed}: {:?}", reply.text);
            assert_eq!(reply.finish, FinishReason::Stop, "{what}");
            assert_eq!(reply.calls_at, Some(0), "{what}");
            assert_eq!(streamed, "", "calls are not streamed as text: {what}");
            let written = fixture.tokenizer.decode_with_control(&reply.tokens);
            let (content, calls) = uses.read_reply(&written, &earlier);
            assert_eq!(content, "", "{what}");
            assert!(!calls.is_empty(), "{what}");
            for (i, call) in calls.iter().enumerate() {
                assert_eq!(call.id, format!("call_{i}"));
                if let Some(only) = only {
                    assert_eq!(call.name, only, "{what}");
                }
                let (_, validator) = validators
                    .iter()
                    .find(|(name, _)| *name == call.name)
                    .unwrap_or_else(|| panic!("{what}: no tool {}", call.name));
                let arguments: Value = serde_json::from_str(&call.arguments).expect(&what);
                assert!(validator.is_valid(&arguments), "{what}: {arguments}");
            }
        }
    }
}

/// Under `tool_choice: 'none'` the tools stay in the prompt, and the reply may be any text that
/// does not open a call: walking the tokens of a call's opening marker, one is refused.
#[test]
fn tool_choice_none_lets_any_text_through_but_not_a_call() {
    let bytes = std::fs::read(fixtures().join("tiny-q8_0.gguf")).unwrap();
    let gguf = pollster::block_on(read_header(&SliceSource(&bytes))).unwrap();
    let fixture = load("tiny-q8_0.gguf");
    let template = hearth_text::chat_template(&gguf, &fixture.tokenizer).unwrap();
    let none = ToolUse::from_openai(
        Some(&tools()),
        Some(&json!("none")),
        &fixture.tokenizer,
        &template,
    )
    .unwrap();
    assert!(!none.calls_possible());
    let lark = none.grammar().expect("text that opens no call");
    let stops = fixture.tokenizer.end_of_turn_ids();
    let walk = |text: &str| {
        let mut constraint = fixture
            .grammars
            .constrain(&Format::Lark(lark.clone()))
            .unwrap();
        for token in fixture.tokenizer.encode(text, false).unwrap() {
            if !constraint.allowed(&stops).unwrap().allows(token) {
                return false;
            }
            constraint.commit(token).unwrap();
        }
        constraint.allowed(&stops).unwrap().allows(stops[0])
    };
    assert!(walk(
        "Sunny in Oslo: <b>21 C</b>, says <tool_ and <tool_cal>."
    ));
    let open = ToolUse::from_openai(Some(&tools()), None, &fixture.tokenizer, &template)
        .unwrap()
        .calls_open()
        .unwrap()
        .to_string();
    assert!(!walk(&format!("Let me check. {open}")));
}

/// Formats a user could write to exhaust the engine. They are compiled on a thread with a
/// wasm worker's 1 MiB of stack: where compiling would overflow it, run for minutes or trip
/// llguidance's own limits, the format is a bad request that says why; formats that are merely
/// heavy (exponential-looking regexes, huge repetition bounds, long enums) compile and step.
#[test]
fn formats_built_to_exhaust_the_engine_are_refused_or_run() {
    let fixture = load("tiny-q8_0.gguf");
    let nested = |depth: usize| {
        (0..depth).fold(
            json!({"type": "integer"}),
            |inner, _| json!({"type": "array", "items": inner}),
        )
    };
    let many_rules = |n: usize| {
        let rules: String = (0..n).map(|i| format!("r{i}: \"w{i}\"\n")).collect();
        let names: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
        format!("start: {}\n{rules}", names.join(" | "))
    };
    let refused = [
        (
            Format::JsonSchema(nested(300)),
            "nests deeper than 100 levels",
        ),
        (
            Format::Lark(many_rules(100_000)),
            "at most 1048576 are accepted",
        ),
        (
            Format::Regex(format!("{}a{}", "(".repeat(500), ")".repeat(500))),
            "regular expression cannot be used",
        ),
        (
            Format::Lark(format!(
                "start: {}\"a\"{}",
                "(".repeat(100),
                ")".repeat(100)
            )),
            "too deeply nested",
        ),
    ];
    let heavy = [
        Format::JsonSchema(nested(40)),
        Format::JsonSchema(
            json!({"enum": (0..20_000).map(|i| format!("value-{i}")).collect::<Vec<_>>()}),
        ),
        Format::JsonSchema(json!({"type": "string", "minLength": 100_000})),
        Format::JsonSchema(
            json!({"type": "array", "items": {"type": "integer"}, "minItems": 50_000}),
        ),
        Format::Regex("(a|b)*a(a|b){40}".into()),
        Format::Regex("[a-z]{1,100000}".into()),
        Format::Regex("(x+x+)+y".into()),
        Format::Lark(many_rules(1_500)),
    ];
    let n_vocab = fixture.model.config.n_vocab as u32;
    let stops = fixture.tokenizer.end_of_turn_ids();
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            for (format, why) in refused {
                let error = fixture.grammars.constrain(&format).unwrap_err();
                assert_eq!(error.code(), "bad-request");
                assert!(error.to_string().contains(why), "{error}");
            }
            // Wider than llguidance's parser row: compiles, then says so within a few steps.
            let mut too_wide = fixture
                .grammars
                .constrain(&Format::Lark(many_rules(5_000)))
                .unwrap();
            let error = (0..64)
                .find_map(|_| {
                    let mask = match too_wide.allowed(&stops) {
                        Ok(mask) => mask,
                        Err(error) => return Some(error),
                    };
                    let token = (0..n_vocab).find(|&t| mask.allows(t)).unwrap();
                    too_wide.commit(token).err()
                })
                .expect("a row wider than llguidance's limit");
            assert_eq!(error.code(), "bad-request");
            assert!(error.to_string().contains("max is 2000"), "{error}");
            for format in heavy {
                let mut constraint = fixture.grammars.constrain(&format).unwrap();
                for _ in 0..64 {
                    let mask = constraint.allowed(&stops).unwrap();
                    let token = (0..n_vocab).find(|&t| mask.allows(t)).unwrap();
                    constraint.commit(token).unwrap();
                    if constraint.is_complete() {
                        break;
                    }
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
