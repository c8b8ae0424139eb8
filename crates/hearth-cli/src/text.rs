//! Text commands: `tokenize`, `generate` and the interactive `chat`.

use crate::{AnyError, TokenList, emit, load_with_header, open, parse_tokens};
use hearth_engine::{Flow, GenerateOptions, Generated, SamplingParams, Session};
use hearth_text::{
    ChatTemplate, Constraint, Format, Grammars, Message, Tokenizer, ToolCall, ToolUse,
    chat_template,
};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(clap::Args)]
pub struct TokenizeArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    text: String,
    /// Treat control tokens written in the text (`<|im_start|>`) as text, not as tokens.
    #[arg(long)]
    no_special: bool,
    /// Print `{"tokens": [...]}` as the last line.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Clone)]
pub struct SamplingArgs {
    /// 0 picks the most likely token every time (greedy).
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// 0: no limit (beyond the 128 candidates the GPU returns).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    presence_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    frequency_penalty: f32,
    /// Tokens the penalties look back over.
    #[arg(long, default_value_t = 64)]
    penalty_last_n: usize,
    /// TOKEN=BIAS, added to that token's logit (repeatable).
    #[arg(long, value_parser = parse_bias)]
    logit_bias: Vec<(u32, f32)>,
    /// Same seed, same output (default: a fresh one each run).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop when the text contains this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Context window (default: the model's trained context length).
    #[arg(long)]
    ctx: Option<usize>,
}

/// The shape a reply must have (structured output): at most one of these.
#[derive(clap::Args, Clone, Default)]
#[group(multiple = false)]
pub struct FormatArgs {
    /// The reply is JSON valid against the JSON Schema in this file.
    #[arg(long)]
    json_schema: Option<PathBuf>,
    /// The reply is a JSON object.
    #[arg(long)]
    json_object: bool,
    /// The whole reply matches this regular expression.
    #[arg(long)]
    regex: Option<String>,
    /// The reply follows the Lark grammar in this file (llguidance's dialect).
    #[arg(long)]
    grammar: Option<PathBuf>,
}

impl FormatArgs {
    pub fn format(&self) -> Result<Option<Format>, AnyError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
        };
        Ok(match self {
            FormatArgs {
                json_schema: Some(path),
                ..
            } => {
                let schema = serde_json::from_str(&read(path)?)
                    .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
                Some(Format::JsonSchema(schema))
            }
            FormatArgs {
                json_object: true, ..
            } => Some(Format::JsonObject),
            FormatArgs {
                regex: Some(rx), ..
            } => Some(Format::Regex(rx.clone())),
            FormatArgs {
                grammar: Some(path),
                ..
            } => Some(Format::Lark(read(path)?)),
            _ => None,
        })
    }

    /// The constraint for this format on `tokenizer` and a model of `n_vocab` logits, if any.
    pub fn constraint(
        &self,
        tokenizer: &Arc<Tokenizer>,
        n_vocab: usize,
    ) -> Result<Option<Constraint>, AnyError> {
        let Some(format) = self.format()? else {
            return Ok(None);
        };
        let grammars = Grammars::new(tokenizer.clone(), n_vocab)?;
        Ok(Some(grammars.constrain(&format)?))
    }
}

fn parse_bias(s: &str) -> Result<(u32, f32), String> {
    let (t, b) = s.split_once('=').ok_or("expected TOKEN=BIAS")?;
    Ok((
        t.trim()
            .parse()
            .map_err(|_| format!("'{t}' is not a token id"))?,
        b.trim()
            .parse()
            .map_err(|_| format!("'{b}' is not a number"))?,
    ))
}

impl SamplingArgs {
    fn params(&self) -> SamplingParams {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            penalty_last_n: self.penalty_last_n,
            logit_bias: self.logit_bias.clone(),
            seed,
        }
    }
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// A GGUF model (default: the built-in SmolLM2-135M-Instruct from
    /// scripts/fetch-default-model.sh).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Prompt text (control tokens such as `<|user|>` are recognised).
    #[arg(long, conflicts_with = "tokens", required_unless_present = "tokens")]
    prompt: Option<String>,
    /// Prompt as comma-separated token ids.
    #[arg(long, value_parser = parse_tokens)]
    tokens: Option<TokenList>,
    /// Keep going past end-of-turn tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Print a JSON object as the last line: generated `tokens`, `text` and timings.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(clap::Args)]
pub struct ChatArgs {
    /// A GGUF model (default: the built-in SmolLM2-135M-Instruct from
    /// scripts/fetch-default-model.sh).
    #[arg(long)]
    model: Option<PathBuf>,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Every reply in this format.
    #[command(flatten)]
    format: FormatArgs,
    /// Functions the model may call: a JSON file holding an OpenAI `tools` array. Each call is
    /// shown, and what you type next is its result.
    #[arg(long, conflicts_with_all = ["json_schema", "json_object", "regex", "grammar"])]
    tools: Option<PathBuf>,
    /// With --tools: auto (the model decides), required (it must call), none, or a
    /// function's name (it must call that one).
    #[arg(long, default_value = "auto", requires = "tools")]
    tool_choice: String,
}

const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The given model, or the built-in default one (looked for in ./models, then in the
/// checkout the binary was built from), announced as the tiny demo model it is.
fn model_or_default(model: Option<PathBuf>) -> Result<PathBuf, AnyError> {
    if let Some(m) = model {
        return Ok(m);
    }
    let candidates = [
        PathBuf::from("models").join(DEFAULT_MODEL),
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../models")
            .join(DEFAULT_MODEL),
    ];
    let found = candidates.into_iter().find(|p| p.is_file()).ok_or(
        "no --model given and the built-in default model is not downloaded: run \
         scripts/fetch-default-model.sh, or pass --model PATH to a GGUF (e.g. \
         Phi-4-mini-instruct-Q4_K_M.gguf)",
    )?;
    eprintln!(
        "Using the built-in default model, SmolLM2-135M-Instruct: a tiny 135M-parameter model \
         for trying Hearth, not for real answers.\nFor those, pass --model with a Phi-4-family \
         GGUF (Phi-4-mini-instruct Q4_K_M ~2.5 GB, Phi-4 Q4_K_M ~9 GB)."
    );
    Ok(found)
}

fn tokenizer_of(gguf: &hearth_gguf::Gguf, path: &std::path::Path) -> Result<Tokenizer, AnyError> {
    Tokenizer::from_gguf(gguf).map_err(|e| format!("{}: {e}", path.display()).into())
}

pub async fn tokenize(args: TokenizeArgs) -> Result<(), AnyError> {
    let (_, gguf) = open(&args.model).await?;
    let tok = tokenizer_of(&gguf, &args.model)?;
    let ids = tok.encode(&args.text, !args.no_special)?;
    if args.json {
        emit(&format!("{}\n", serde_json::json!({ "tokens": ids })))
    } else {
        let mut out = String::new();
        for id in &ids {
            out.push_str(&format!("{id:>8} {:?}\n", tok.token_text(*id)));
        }
        emit(&out)
    }
}

fn report(g: &Generated) -> String {
    let ttft = g.prefill.as_secs_f64();
    format!(
        "[{} tokens, {:.1} tokens/s, first token after {:.2} s ({} prompt tokens, {} reused \
         from cache), finish: {}]",
        g.tokens.len(),
        g.decode_tokens_per_s(),
        ttft,
        g.prompt_tokens,
        g.reused_tokens,
        g.finish.as_str()
    )
}

pub async fn generate(args: GenerateArgs) -> Result<(), AnyError> {
    let path = model_or_default(args.model.clone())?;
    let (model, gguf, times) = load_with_header(&path).await?;
    let load_s = times.total_s;
    let tok = Arc::new(tokenizer_of(&gguf, &path)?);
    let constraint = args.format.constraint(&tok, model.config.n_vocab)?;
    let prompt = match (&args.prompt, &args.tokens) {
        (Some(text), _) => tok.encode_prompt(text)?,
        (None, Some(t)) => t.0.clone(),
        (None, None) => unreachable!("clap requires one"),
    };
    let mut session = Session::new(model, args.sampling.ctx).await?;
    let options = GenerateOptions {
        max_tokens: args.sampling.max_tokens,
        sampling: args.sampling.params(),
        stop: args.sampling.stop.clone(),
        stop_tokens: if args.ignore_eos {
            Vec::new()
        } else {
            tok.end_of_turn_ids()
        },
        constraint,
        calls_open: None,
    };
    let json = args.json;
    let g = hearth_engine::generate(&mut session, &tok, &prompt, &options, &mut |text, _| {
        if !json && emit(text).is_err() {
            return Flow::Stop;
        }
        Flow::Continue
    })
    .await?;
    if json {
        let out = serde_json::json!({
            "tokens": g.tokens,
            "text": g.text,
            "finish_reason": g.finish.as_str(),
            "prompt_tokens": g.prompt_tokens,
            "load_s": load_s,
            "prefill_s": g.prefill.as_secs_f64(),
            "decode_s": g.decode.as_secs_f64(),
            "decode_tokens_per_s": g.decode_tokens_per_s(),
            "seed": options.sampling.seed,
        });
        emit(&format!("{out}\n"))
    } else {
        emit("\n")?;
        eprintln!("{}", report(&g));
        Ok(())
    }
}

/// Set while a reply streams: Ctrl-C then stops the reply instead of the program.
static GENERATING: AtomicBool = AtomicBool::new(false);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The tools of `--tools` and the choice of `--tool-choice`, for this model.
fn chat_tools(
    args: &ChatArgs,
    tok: &Tokenizer,
    template: &ChatTemplate,
) -> Result<Option<ToolUse>, AnyError> {
    let Some(path) = &args.tools else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tools: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let choice = match args.tool_choice.as_str() {
        "auto" | "none" | "required" => serde_json::json!(args.tool_choice),
        name => serde_json::json!({"type": "function", "function": {"name": name}}),
    };
    Ok(Some(ToolUse::from_openai(
        Some(&tools),
        Some(&choice),
        tok,
        template,
    )?))
}

pub async fn chat(args: ChatArgs) -> Result<(), AnyError> {
    let path = model_or_default(args.model.clone())?;
    let (model, gguf, _) = load_with_header(&path).await?;
    let tok = Arc::new(tokenizer_of(&gguf, &path)?);
    let template = chat_template(&gguf, &tok)?;
    let n_vocab = model.config.n_vocab;
    let tools = chat_tools(&args, &tok, &template)?;
    let constraint = match tools.as_ref().map(ToolUse::grammar) {
        Some(Some(lark)) => {
            Some(Grammars::new(tok.clone(), n_vocab)?.constrain(&Format::Lark(lark))?)
        }
        Some(None) => None,
        None => args.format.constraint(&tok, n_vocab)?,
    };
    let name = model
        .config
        .name
        .clone()
        .unwrap_or_else(|| "the model".into());
    let mut session = Session::new(model, args.sampling.ctx).await?;
    let _ = ctrlc::set_handler(|| {
        if GENERATING.load(Ordering::SeqCst) {
            INTERRUPTED.store(true, Ordering::SeqCst);
        } else {
            std::process::exit(130);
        }
    });
    let mut messages: Vec<Message> = args
        .system
        .iter()
        .map(|s| Message::new("system", s))
        .collect();
    eprintln!(
        "Chatting with {name}. Type a message; /reset starts over, /exit (or Ctrl-D) quits, \
         Ctrl-C stops a reply."
    );
    let stdin = std::io::stdin();
    let mut seed = args.sampling.params().seed;
    // Calls of the last reply still waiting for their results, and calls made so far.
    let mut pending: Vec<ToolCall> = Vec::new();
    loop {
        match pending.first() {
            Some(call) => eprint!(
                "\nresult of {}({}) [{}]> ",
                call.name, call.arguments, call.id
            ),
            None => eprint!("\n> "),
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end_matches(['\n', '\r']);
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => return Ok(()),
            "/reset" => {
                messages.retain(|m| m.role == "system");
                pending.clear();
                eprintln!("(new conversation)");
                continue;
            }
            _ => {}
        }
        if pending.is_empty() {
            messages.push(Message::new("user", line));
        } else {
            let call = pending.remove(0);
            let result = Message {
                tool_call_id: Some(call.id),
                ..Message::new("tool", line)
            };
            messages.push(result);
            if !pending.is_empty() {
                continue;
            }
        }
        let rendered = match &tools {
            Some(tools) => tools.render(&template, &messages)?,
            None => template.render(&messages, true)?,
        };
        let prompt = tok.encode_prompt(&rendered)?;
        let mut params = args.sampling.params();
        params.seed = seed;
        seed = seed.wrapping_add(1);
        let options = GenerateOptions {
            max_tokens: args.sampling.max_tokens,
            sampling: params,
            stop: args.sampling.stop.clone(),
            stop_tokens: tok.end_of_turn_ids(),
            constraint: constraint.clone(),
            calls_open: tools
                .as_ref()
                .and_then(ToolUse::calls_open)
                .map(str::to_string),
        };
        INTERRUPTED.store(false, Ordering::SeqCst);
        GENERATING.store(true, Ordering::SeqCst);
        let result =
            hearth_engine::generate(&mut session, &tok, &prompt, &options, &mut |text, _| {
                if emit(text).is_err() || INTERRUPTED.load(Ordering::SeqCst) {
                    return Flow::Stop;
                }
                Flow::Continue
            })
            .await;
        GENERATING.store(false, Ordering::SeqCst);
        match result {
            Ok(g) => {
                emit("\n")?;
                eprintln!("{}", report(&g));
                let (content, calls) = match (&tools, g.calls_at) {
                    (Some(tools), Some(_)) => {
                        tools.read_reply(&tok.decode_with_control(&g.tokens), &messages)
                    }
                    _ => (g.text.clone(), Vec::new()),
                };
                for call in &calls {
                    emit(&format!(
                        "→ {}({}) [{}]\n",
                        call.name, call.arguments, call.id
                    ))?;
                }
                let tool_calls = calls.iter().map(ToolCall::to_openai).collect::<Vec<_>>();
                messages.push(Message {
                    tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                    ..Message::new("assistant", &content)
                });
                pending = calls;
            }
            Err(e) => {
                // The engine stays usable: drop the turn and let the user go on or /reset.
                messages.pop();
                eprintln!("error: {e}");
            }
        }
    }
}
