//! Hearth in the browser: the engine behind a small wasm-bindgen surface that `js/worker.js`
//! drives. Bytes come in through a JS function `read(offset, length) → Promise<Uint8Array>`
//! (IndexedDB chunks, a `File`, …), so the model never sits whole in wasm memory: weights
//! stream from that function straight into GPU buffers a few MiB at a time.
//!
//! This is an internal interface; applications use the JS API in `js/hearth.js`.

#![cfg(target_arch = "wasm32")]
// The engine shares its GPU and model through `Arc` so that native callers can cross threads;
// in the browser's single-threaded wasm those handles are not Send, and the Arc is just a count.
#![allow(clippy::arc_with_non_send_sync)]

mod source;

use hearth_engine::{
    AdapterKind, FinishReason, Flow, GenerateOptions, Generated, Gpu, MemoryPlan, Model,
    SamplingParams, Session,
};
use hearth_gguf::{Gguf, read_split_header};
use hearth_text::{
    ChatTemplate, Format, Grammars, Message, Tokenizer, ToolCall, ToolUse, chat_template,
};
use serde::{Deserialize, Serialize};
use source::JsSource;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// Bytes of wasm linear memory in use (it only grows): what tests assert stays bounded.
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size::<0>() * 65536) as f64
}

/// A JS `Error` whose `code` says what kind of failure it is (the codes of `HearthError`:
/// `bad-model`, `unsupported-model`, `out-of-memory`, `context-full`, …), so pages can act on it.
fn coded_error(code: &str, message: impl std::fmt::Display) -> JsValue {
    let error = js_sys::Error::new(&message.to_string());
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

/// An error the caller made in a request (options, messages, call order).
fn request_error(message: impl std::fmt::Display) -> JsValue {
    coded_error("bad-request", message)
}

/// Errors of the engine's crates, which name their own kind.
trait Coded: std::fmt::Display {
    fn code(&self) -> &'static str;
}

macro_rules! coded {
    ($($t:ty),*) => {$(impl Coded for $t { fn code(&self) -> &'static str { <$t>::code(self) } })*};
}
coded!(
    hearth_gguf::GgufError,
    hearth_model::ModelError,
    hearth_text::TextError,
    hearth_engine::EngineError
);

fn js_error(e: impl Coded) -> JsValue {
    coded_error(e.code(), &e)
}

/// A loaded model and its one conversation.
struct Loaded {
    model: Arc<Model>,
    tokenizer: Arc<Tokenizer>,
    template: Rc<ChatTemplate>,
    /// Compiles output formats for this model's vocabulary: made on the first request that
    /// needs one (it walks the whole vocabulary), then kept.
    grammars: Rc<std::cell::OnceCell<Grammars>>,
    /// Taken out while a generation runs (JS queues calls; a second one finds it gone).
    session: Option<Session>,
}

impl Loaded {
    /// The model's parts a generation needs, without the session (which it takes out).
    fn share(&self) -> Loaded {
        Loaded {
            model: self.model.clone(),
            tokenizer: self.tokenizer.clone(),
            template: self.template.clone(),
            grammars: self.grammars.clone(),
            session: None,
        }
    }

    /// The model's grammar compiler, made on first use.
    fn grammars(&self) -> Result<&Grammars, JsValue> {
        if self.grammars.get().is_none() {
            let made = Grammars::new(self.tokenizer.clone(), self.model.config.n_vocab);
            let _ = self.grammars.set(made.map_err(js_error)?);
        }
        Ok(self.grammars.get().expect("set above"))
    }
}

struct State {
    gpu: Arc<Gpu>,
    loaded: Option<Loaded>,
}

/// The engine inside the worker: one GPU device, at most one model.
#[wasm_bindgen]
pub struct WasmEngine {
    state: Rc<RefCell<State>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LoadOptions {
    /// Context window in tokens (default: as much of the model's trained window as the device
    /// can bind and `gpu_memory_bytes` holds; the KV cache grows as the conversation does).
    context_length: Option<usize>,
    /// GPU memory the caller allows the model, when it knows (WebGPU does not tell).
    gpu_memory_bytes: Option<f64>,
    /// Byte length of each part of a split model, in order; absent for one file.
    part_lens: Option<Vec<f64>>,
}

impl LoadOptions {
    fn part_lens(&self, size: u64) -> Vec<u64> {
        match &self.part_lens {
            Some(lens) => lens.iter().map(|&l| l as u64).collect(),
            None => vec![size],
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelInfo {
    architecture: String,
    name: Option<String>,
    n_layer: usize,
    n_embd: usize,
    n_head: usize,
    n_head_kv: usize,
    n_vocab: usize,
    trained_context_length: usize,
    context_length: usize,
    file_bytes: f64,
    weight_bytes: f64,
    kv_cache_bytes: f64,
    activation_bytes: f64,
    gpu_bytes_needed: f64,
    /// Weight bytes one decoded token reads (known once loaded): the bandwidth bound's numerator.
    weight_bytes_per_token: Option<f64>,
}

/// The model `gguf` describes and its memory plan on `gpu` under `options`.
fn describe(
    gpu: &Gpu,
    gguf: &Gguf,
    options: &LoadOptions,
) -> Result<(ModelInfo, MemoryPlan), JsValue> {
    let config = hearth_model::Config::from_gguf(gguf).map_err(js_error)?;
    let budget = options.gpu_memory_bytes.map(|b| b as u64);
    let plan = hearth_engine::plan(gpu, gguf, &config, options.context_length, budget)
        .map_err(js_error)?;
    let info = ModelInfo {
        architecture: config.arch.name().to_string(),
        name: config.name.clone(),
        n_layer: config.n_layer,
        n_embd: config.n_embd,
        n_head: config.n_head,
        n_head_kv: config.n_head_kv,
        n_vocab: config.n_vocab,
        trained_context_length: config.context_length,
        context_length: plan.ctx,
        file_bytes: gguf.file_len as f64,
        weight_bytes: plan.weights as f64,
        kv_cache_bytes: plan.kv_cache as f64,
        activation_bytes: plan.activations as f64,
        gpu_bytes_needed: plan.total() as f64,
        weight_bytes_per_token: None,
    };
    Ok((info, plan))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<String>,
    /// An assistant turn's calls, in OpenAI's shape.
    #[serde(default)]
    tool_calls: Option<Vec<serde_json::Value>>,
    /// The call a tool message answers.
    #[serde(default)]
    tool_call_id: Option<String>,
}

impl ChatMessage {
    fn message(&self) -> Message {
        Message {
            tool_calls: self.tool_calls.clone(),
            tool_call_id: self.tool_call_id.clone(),
            ..Message::new(&self.role, self.content.as_deref().unwrap_or_default())
        }
    }
}

/// The shape a reply must have: `{type: 'json_schema', schema} | {type: 'json_object'} |
/// {type: 'regex', pattern} | {type: 'grammar', lark}`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormat {
    JsonSchema {
        schema: serde_json::Value,
    },
    JsonObject,
    Regex {
        pattern: String,
    },
    Grammar {
        lark: String,
    },
    /// Free text (OpenAI's default).
    Text,
}

impl ResponseFormat {
    fn format(&self) -> Option<Format> {
        Some(match self {
            ResponseFormat::JsonSchema { schema } => Format::JsonSchema(schema.clone()),
            ResponseFormat::JsonObject => Format::JsonObject,
            ResponseFormat::Regex { pattern } => Format::Regex(pattern.clone()),
            ResponseFormat::Grammar { lark } => Format::Lark(lark.clone()),
            ResponseFormat::Text => return None,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct GenerateRequest {
    prompt: Option<String>,
    tokens: Option<Vec<u32>>,
    /// A conversation, rendered with the model's chat template.
    messages: Option<Vec<ChatMessage>>,
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    penalty_last_n: Option<usize>,
    /// Token id (as a string key, JSON-style) → bias.
    logit_bias: Option<std::collections::BTreeMap<String, f32>>,
    seed: Option<f64>,
    stop: Option<Vec<String>>,
    /// Keep going past end-of-turn tokens.
    ignore_eos: bool,
    /// The shape the reply must have (structured output).
    response_format: Option<ResponseFormat>,
    /// Functions the model may call: an OpenAI `tools` array.
    tools: Option<serde_json::Value>,
    /// OpenAI's `tool_choice`: 'auto' (default), 'none', 'required', or {type: 'function',
    /// function: {name}}.
    tool_choice: Option<serde_json::Value>,
}

impl GenerateRequest {
    fn sampling(&self) -> Result<SamplingParams, JsValue> {
        let d = SamplingParams::default();
        let mut logit_bias = Vec::new();
        for (id, bias) in self.logit_bias.iter().flatten() {
            logit_bias.push((
                id.parse().map_err(|_| {
                    request_error(format!("logitBias key '{id}' is not a token id"))
                })?,
                *bias,
            ));
        }
        Ok(SamplingParams {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_k: self.top_k.unwrap_or(d.top_k),
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            repeat_penalty: self.repeat_penalty.unwrap_or(d.repeat_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            penalty_last_n: self.penalty_last_n.unwrap_or(d.penalty_last_n),
            logit_bias,
            seed: self
                .seed
                .map(|s| s as u64)
                .unwrap_or_else(|| (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64),
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateStats {
    prompt_tokens: usize,
    reused_tokens: usize,
    generated_tokens: usize,
    time_to_first_token_ms: f64,
    decode_ms: f64,
    prefill_tokens_per_s: f64,
    decode_tokens_per_s: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResult {
    /// The reply's text; with tool calls, the text before them.
    text: String,
    tokens: Vec<u32>,
    finish_reason: &'static str,
    /// Calls the reply made (OpenAI's shape), if any: then `finishReason` is 'tool_calls'.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<serde_json::Value>,
    stats: GenerateStats,
}

impl From<Generated> for GenerateResult {
    fn from(g: Generated) -> Self {
        let prefilled = g.prompt_tokens - g.reused_tokens;
        GenerateResult {
            stats: GenerateStats {
                prompt_tokens: g.prompt_tokens,
                reused_tokens: g.reused_tokens,
                generated_tokens: g.tokens.len(),
                time_to_first_token_ms: g.prefill.as_secs_f64() * 1e3,
                decode_ms: g.decode.as_secs_f64() * 1e3,
                prefill_tokens_per_s: prefilled as f64 / g.prefill.as_secs_f64().max(1e-9),
                decode_tokens_per_s: g.decode_tokens_per_s(),
            },
            finish_reason: match g.finish {
                FinishReason::Stop => "stop",
                FinishReason::Length => "length",
                FinishReason::ContextFull => "context_full",
                FinishReason::Aborted => "abort",
            },
            text: g.text,
            tokens: g.tokens,
            tool_calls: Vec::new(),
        }
    }
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| coded_error("engine", e))
}

fn options_from<T: for<'de> Deserialize<'de> + Default>(value: JsValue) -> Result<T, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| request_error(format!("invalid options: {e}")))
}

impl WasmEngine {
    fn loaded<T>(&self, f: impl FnOnce(&Loaded) -> Result<T, JsValue>) -> Result<T, JsValue> {
        let state = self.state.borrow();
        let loaded = state
            .loaded
            .as_ref()
            .ok_or_else(|| request_error("no model is loaded"))?;
        f(loaded)
    }

    async fn generate_on(
        &self,
        session: &mut Session,
        model: &Loaded,
        request: &GenerateRequest,
        on_text: &js_sys::Function,
    ) -> Result<JsValue, JsValue> {
        let (tokenizer, template) = (&model.tokenizer, &model.template);
        let tools = ToolUse::from_openai(
            request.tools.as_ref(),
            request.tool_choice.as_ref(),
            tokenizer,
            template,
        )
        .map_err(js_error)?;
        if tools.calls_possible() && request.messages.is_none() {
            return Err(request_error(
                "tools need messages (a chat), not a prompt or tokens",
            ));
        }
        let response_format = request
            .response_format
            .as_ref()
            .and_then(ResponseFormat::format);
        if tools.calls_possible() && response_format.is_some() {
            return Err(request_error("give tools or a response format, not both"));
        }
        let messages: Vec<Message> = request
            .messages
            .iter()
            .flatten()
            .map(ChatMessage::message)
            .collect();
        let prompt = match (&request.prompt, &request.tokens, &request.messages) {
            (Some(text), None, None) => tokenizer.encode_prompt(text).map_err(js_error)?,
            (None, Some(tokens), None) => tokens.clone(),
            (None, None, Some(_)) => {
                let text = tools.render(template, &messages).map_err(js_error)?;
                tokenizer.encode_prompt(&text).map_err(js_error)?
            }
            _ => {
                return Err(request_error(
                    "give exactly one of prompt, tokens or messages",
                ));
            }
        };
        let format = match (response_format, tools.grammar()) {
            (Some(format), _) => Some(format),
            (None, Some(lark)) => Some(Format::Lark(lark)),
            (None, None) => None,
        };
        let constraint = match format {
            Some(format) => Some(model.grammars()?.constrain(&format).map_err(js_error)?),
            None => None,
        };
        let options = GenerateOptions {
            max_tokens: request.max_tokens.unwrap_or(256),
            sampling: request.sampling()?,
            stop: request.stop.clone().unwrap_or_default(),
            stop_tokens: if request.ignore_eos {
                Vec::new()
            } else {
                tokenizer.end_of_turn_ids()
            },
            constraint,
            calls_open: tools.calls_open().map(str::to_string),
        };
        let generated =
            hearth_engine::generate(session, tokenizer, &prompt, &options, &mut |text, id| {
                match on_text.call2(
                    &JsValue::NULL,
                    &text.into(),
                    &id.map_or(JsValue::UNDEFINED, JsValue::from),
                ) {
                    Ok(v) if v.as_bool() == Some(false) => Flow::Stop,
                    Ok(_) => Flow::Continue,
                    Err(_) => Flow::Stop,
                }
            })
            .await
            .map_err(js_error)?;
        let calls = generated.calls_at.map(|_| {
            tools.read_reply(&tokenizer.decode_with_control(&generated.tokens), &messages)
        });
        let mut result = GenerateResult::from(generated);
        if let Some((content, calls)) = calls.filter(|(_, calls)| !calls.is_empty()) {
            result.text = content;
            result.finish_reason = "tool_calls";
            result.tool_calls = calls.iter().map(ToolCall::to_openai).collect();
        }
        to_js(&result)
    }
}

#[wasm_bindgen]
impl WasmEngine {
    /// Opens the browser's GPU. Fails with a clear message when WebGPU is unavailable.
    /// `cpu_adapter`: the page learned (WebGPU's adapter info) that the "GPU" is a CPU
    /// emulation such as SwiftShader, which wants kernels shaped for a CPU.
    pub async fn create(cpu_adapter: bool) -> Result<WasmEngine, JsValue> {
        let mut gpu = Gpu::new().await.map_err(js_error)?;
        if cpu_adapter {
            gpu.set_adapter_kind(AdapterKind::CpuEmulated)
                .map_err(js_error)?;
        }
        Ok(WasmEngine {
            state: Rc::new(RefCell::new(State {
                gpu: Arc::new(gpu),
                loaded: None,
            })),
        })
    }

    /// The adapter and the limits that bound what can load.
    pub fn adapter(&self) -> Result<JsValue, JsValue> {
        let state = self.state.borrow();
        let gpu = &state.gpu;
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Adapter {
            name: String,
            backend: String,
            max_buffer_size: f64,
            max_storage_buffer_binding_size: f64,
        }
        to_js(&Adapter {
            name: gpu.info.name.clone(),
            backend: format!("{:?}", gpu.info.backend),
            max_buffer_size: gpu.limits.max_buffer_size as f64,
            max_storage_buffer_binding_size: gpu.limits.max_storage_buffer_binding_size as f64,
        })
    }

    /// Reads the header through `read` and checks the model fits this device, without
    /// touching the weights: the caller downloads only the header's bytes before this.
    pub async fn inspect(
        &self,
        size: f64,
        read: js_sys::Function,
        options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let options: LoadOptions = options_from(options)?;
        let source = JsSource::new(read, size as u64);
        let gguf = read_split_header(&source, &options.part_lens(size as u64))
            .await
            .map_err(js_error)?;
        let gpu = self.state.borrow().gpu.clone();
        to_js(&describe(&gpu, &gguf, &options)?.0)
    }

    /// Loads the model (replacing any loaded one), streaming weights from `read` to the GPU.
    /// `on_progress(done, total)` reports bytes uploaded.
    pub async fn load(
        &self,
        size: f64,
        read: js_sys::Function,
        options: JsValue,
        on_progress: js_sys::Function,
    ) -> Result<JsValue, JsValue> {
        let options: LoadOptions = options_from(options)?;
        let source = JsSource::new(read, size as u64);
        let gguf = read_split_header(&source, &options.part_lens(size as u64))
            .await
            .map_err(js_error)?;
        let gpu = self.state.borrow().gpu.clone();
        let (mut info, plan) = describe(&gpu, &gguf, &options)?;
        let tokenizer = Tokenizer::from_gguf(&gguf).map_err(js_error)?;
        let template = chat_template(&gguf, &tokenizer).map_err(js_error)?;
        self.state.borrow_mut().loaded = None; // free the old model's GPU memory first
        gpu.reset_peak_memory();
        let model = Model::load(gpu, &gguf, &source, &mut |done, total| {
            let _ = on_progress.call2(
                &JsValue::NULL,
                &(done as f64).into(),
                &(total as f64).into(),
            );
        })
        .await
        .map_err(js_error)?;
        info.weight_bytes_per_token = Some(model.weight_bytes_per_token() as f64);
        let model = Arc::new(model);
        let session = Session::from_plan(model.clone(), &plan)
            .await
            .map_err(js_error)?;
        self.state.borrow_mut().loaded = Some(Loaded {
            model,
            tokenizer: Arc::new(tokenizer),
            template: Rc::new(template),
            grammars: Rc::default(),
            session: Some(session),
        });
        to_js(&info)
    }

    /// Where the last load's time went after the header (see `LoadProfile`), in seconds:
    /// `[weightsQueuedS, compileWaitS, gpuWaitS]`.
    #[wasm_bindgen(js_name = modelLoadProfile)]
    pub fn model_load_profile(&self) -> Result<Vec<f64>, JsValue> {
        self.loaded(|l| {
            let p = l.model.load_profile;
            Ok(vec![p.weights_queued_s, p.compile_wait_s, p.gpu_wait_s])
        })
    }

    /// Token ids of `text` (control tokens recognised when `special`).
    pub fn tokenize(&self, text: &str, special: bool) -> Result<Vec<u32>, JsValue> {
        self.loaded(|l| l.tokenizer.encode(text, special).map_err(js_error))
    }

    pub fn detokenize(&self, ids: Vec<u32>) -> Result<String, JsValue> {
        self.loaded(|l| Ok(l.tokenizer.decode(&ids)))
    }

    /// The prompt text the model's chat template makes of `messages`.
    #[wasm_bindgen(js_name = applyChatTemplate)]
    pub fn apply_chat_template(
        &self,
        messages: JsValue,
        add_generation_prompt: bool,
    ) -> Result<String, JsValue> {
        let messages: Vec<ChatMessage> = serde_wasm_bindgen::from_value(messages)
            .map_err(|e| request_error(format!("invalid messages: {e}")))?;
        let messages: Vec<Message> = messages.iter().map(ChatMessage::message).collect();
        self.loaded(|l| {
            l.template
                .render(&messages, add_generation_prompt)
                .map_err(js_error)
        })
    }

    /// Generates from `request` (see `GenerateRequest`), calling `on_text(text, tokenId)` as
    /// text is produced; `on_text` returning `false` stops generation (abort). The KV cache
    /// keeps the conversation, so a follow-up that extends the same tokens skips their prefill.
    pub async fn generate(
        &self,
        request: JsValue,
        on_text: js_sys::Function,
    ) -> Result<JsValue, JsValue> {
        let request: GenerateRequest = options_from(request)?;
        let (model, mut session) = {
            let mut state = self.state.borrow_mut();
            let loaded = state
                .loaded
                .as_mut()
                .ok_or_else(|| request_error("no model is loaded"))?;
            let session = loaded
                .session
                .take()
                .ok_or_else(|| request_error("a generation is already running on this engine"))?;
            (loaded.share(), session)
        };
        let result = self
            .generate_on(&mut session, &model, &request, &on_text)
            .await;
        if let Some(loaded) = self.state.borrow_mut().loaded.as_mut() {
            loaded.session = Some(session);
        }
        result
    }

    /// Forgets the conversation (the next generation prefills from scratch).
    pub fn reset(&self) {
        if let Some(session) = self
            .state
            .borrow_mut()
            .loaded
            .as_mut()
            .and_then(|l| l.session.as_mut())
        {
            session.truncate(0);
        }
    }

    /// Frees the model's GPU memory; the engine can load another.
    pub fn unload(&self) {
        self.state.borrow_mut().loaded = None;
    }

    /// Whether the GPU device still works (it reports loss and errors here).
    #[wasm_bindgen(js_name = checkDevice)]
    pub fn check_device(&self) -> Result<(), JsValue> {
        self.state.borrow().gpu.check().map_err(js_error)
    }

    /// Destroys the GPU device, as a driver reset would (tests of device-loss handling).
    #[wasm_bindgen(js_name = loseDeviceForTesting)]
    pub fn lose_device_for_testing(&self) {
        self.state.borrow().gpu.device.destroy();
    }

    #[wasm_bindgen(js_name = modelBytesOnGpu)]
    pub fn model_bytes_on_gpu(&self) -> f64 {
        self.state
            .borrow()
            .loaded
            .as_ref()
            .map_or(0.0, |l| l.model.weight_gpu_bytes() as f64)
    }

    /// GPU memory the engine's buffers hold now, and their peak since the model began to load.
    #[wasm_bindgen(js_name = gpuMemory)]
    pub fn gpu_memory(&self) -> Vec<f64> {
        let memory = self.state.borrow().gpu.memory();
        vec![memory.live as f64, memory.peak as f64]
    }
}
