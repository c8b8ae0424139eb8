//! `hearth`: inspect, run and benchmark GGUF models on the GPU from the terminal.

mod bench;
mod file;
mod synth;
mod text;

use clap::{Parser, Subcommand};
use file::FileSource;
use hearth_engine::{Gpu, Model, Session};
use hearth_gguf::{Gguf, read_split_header};
use hearth_model::Config;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "hearth",
    version,
    about = "Private LLM inference on your GPU (GGUF models, WGSL kernels)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a GGUF model: architecture, shapes, tensor types, sizes and the memory it needs.
    Inspect {
        #[arg(long)]
        model: PathBuf,
        /// Also list every tensor.
        #[arg(long)]
        tensors: bool,
    },
    /// Teacher-forced logits for every position, written as raw little-endian f32
    /// [n_tokens, n_vocab].
    Logits {
        #[arg(long)]
        model: PathBuf,
        /// Comma-separated token ids.
        #[arg(long, value_parser = parse_tokens)]
        tokens: TokenList,
        #[arg(long)]
        out: PathBuf,
        /// Context window (default: the model's trained context length).
        #[arg(long)]
        ctx: Option<usize>,
    },
    /// Generate text after a prompt (raw text or token ids), streaming it to stdout.
    Generate(text::GenerateArgs),
    /// Chat with the model in the terminal (multi-turn, streaming, tokens/s after each reply).
    Chat(text::ChatArgs),
    /// Token ids of a text under the model's own tokenizer.
    Tokenize(text::TokenizeArgs),
    /// Measure prefill and decode speed and the effective bandwidth of decoding.
    Bench(bench::BenchArgs),
    /// Write a random-weight GGUF with a real model's shapes (benchmarks without downloads).
    Synth(synth::SynthArgs),
}

#[derive(Clone, Debug)]
pub(crate) struct TokenList(pub Vec<u32>);

pub(crate) fn parse_tokens(s: &str) -> Result<TokenList, String> {
    let tokens = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| format!("'{t}' is not a token id"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if tokens.is_empty() {
        return Err("no token ids given".into());
    }
    Ok(TokenList(tokens))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match pollster::block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) type AnyError = Box<dyn std::error::Error>;

/// Appends a formatted line to a report string.
macro_rules! line {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Writes to stdout; a reader that went away (`hearth … | head`) ends output quietly.
pub(crate) fn emit(text: &str) -> Result<(), AnyError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Opens a model file and parses its header.
pub(crate) async fn open(path: &Path) -> Result<(FileSource, Gguf), AnyError> {
    let source = FileSource::open(path)?;
    let gguf = read_split_header(&source, &source.part_lens())
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((source, gguf))
}

/// Opens the GPU and uploads the model, with a progress bar on stderr.
pub(crate) async fn load(path: &Path) -> Result<(Arc<Model>, f64), AnyError> {
    let (model, _, times) = load_with_header(path).await?;
    Ok((model, times.total_s))
}

/// How long a load took, and how much of it was spent reading the file.
pub(crate) struct LoadTimes {
    pub total_s: f64,
    pub read_s: f64,
}

/// Like [`load`], also returning the parsed header (for the tokenizer and chat template).
pub(crate) async fn load_with_header(
    path: &Path,
) -> Result<(Arc<Model>, Gguf, LoadTimes), AnyError> {
    let (source, gguf) = open(path).await?;
    Config::from_gguf(&gguf).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut gpu = Gpu::new().await?;
    // Knobs for measuring: the kernel set (cpu, gpu, or gpu:LANES, the lanes per group of rows
    // in the decode matvec) instead of the adapter's own.
    if let Ok(kernels) = std::env::var("HEARTH_KERNELS") {
        gpu.set_adapter_kind(
            kernels
                .parse()
                .map_err(|e| format!("HEARTH_KERNELS: {e}"))?,
        )?;
    }
    // And whether the GPU kernels fuse RMSNorm and RoPE into the kernels after them (on unless 0).
    if std::env::var("HEARTH_FUSION").is_ok_and(|v| v == "0") {
        gpu.set_kernel_fusion(false);
    }
    // And whether greedy decoding queues each step before reading the last token (1 or 0).
    if let Ok(v) = std::env::var("HEARTH_QUEUE_AHEAD") {
        gpu.set_queue_ahead(v == "1");
    }
    let gpu = Arc::new(gpu);
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "uploading {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .expect("valid template"),
    );
    let start = Instant::now();
    let read_before = source.read_seconds();
    let model = Model::load(gpu, &gguf, &source, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    let times = LoadTimes {
        total_s: start.elapsed().as_secs_f64(),
        read_s: source.read_seconds() - read_before,
    };
    Ok((Arc::new(model), gguf, times))
}

async fn run(cli: Cli) -> Result<(), AnyError> {
    match cli.command {
        Command::Inspect { model, tensors } => inspect(&model, tensors).await,
        Command::Logits {
            model,
            tokens,
            out,
            ctx,
        } => {
            let (model, _) = load(&model).await?;
            let mut session = Session::new(model, ctx).await?;
            let logits = session.logits(&tokens.0).await?;
            let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(&out, bytes).map_err(|e| format!("writing {}: {e}", out.display()))?;
            eprintln!(
                "wrote {} positions × {} logits to {}",
                tokens.0.len(),
                session.model().config.n_vocab,
                out.display()
            );
            Ok(())
        }
        Command::Generate(args) => text::generate(args).await,
        Command::Chat(args) => text::chat(args).await,
        Command::Tokenize(args) => text::tokenize(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Synth(args) => synth::run(args),
    }
}

/// What the model takes on this machine's GPU, at a 4096-token window and at the longest the
/// device allows: the plan sessions allocate by.
async fn memory_plan(r: &mut String, gguf: &Gguf, c: &Config) {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let gpu = match Gpu::new().await {
        Ok(gpu) => gpu,
        Err(e) => return line!(r, "GPU memory    unknown: {e}"),
    };
    for ctx in [Some(4096.min(c.context_length)), None] {
        match hearth_engine::plan(&gpu, gguf, c, ctx, None) {
            Ok(p) => line!(
                r,
                "GPU memory    {:.1} MiB at a {}-token window: weights {:.1} + KV cache {:.1} + \
                 activations {:.1} MiB ({})",
                mib(p.total()),
                p.ctx,
                mib(p.weights),
                mib(p.kv_cache),
                mib(p.activations + p.kv_growth),
                gpu.adapter_name()
            ),
            Err(e) => line!(
                r,
                "GPU memory    not runnable on {}: {e}",
                gpu.adapter_name()
            ),
        }
    }
}

async fn inspect(path: &Path, list_tensors: bool) -> Result<(), AnyError> {
    let (_, gguf) = open(path).await?;
    let mut r = String::new();
    line!(
        r,
        "file          {} ({:.1} MiB, GGUF v{})",
        path.display(),
        gguf.file_len as f64 / (1 << 20) as f64,
        gguf.version
    );
    line!(
        r,
        "architecture  {}",
        gguf.architecture().unwrap_or("(none)")
    );
    if let Some(name) = gguf.get("general.name").and_then(|v| v.as_str()) {
        line!(r, "name          {name}");
    }
    let mut types: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    for t in &gguf.tensors {
        let e = types.entry(t.ty.to_string()).or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
    }
    let summary: Vec<String> = types
        .iter()
        .map(|(ty, (n, b))| format!("{ty} ×{n} ({:.1} MiB)", *b as f64 / (1 << 20) as f64))
        .collect();
    line!(
        r,
        "tensors       {} — {}",
        gguf.tensors.len(),
        summary.join(", ")
    );
    match Config::from_gguf(&gguf) {
        Ok(c) => {
            line!(r, "layers        {}", c.n_layer);
            line!(r, "embedding     {}", c.n_embd);
            line!(
                r,
                "heads         {} query / {} key-value, head width {} ({} rotary)",
                c.n_head,
                c.n_head_kv,
                c.head_dim,
                c.n_rot
            );
            line!(r, "feed-forward  {}", c.n_ff);
            line!(r, "vocabulary    {}", c.n_vocab);
            line!(
                r,
                "output        {}",
                if c.tied_output() {
                    "tied to token_embd"
                } else {
                    "separate output.weight"
                }
            );
            let longrope = if c.weights.rope_factors_long.is_some() {
                format!(
                    ", LongRoPE (original context {}, attention factor {})",
                    c.original_context_length, c.rope_attn_factor
                )
            } else {
                String::new()
            };
            line!(
                r,
                "context       {} tokens, RoPE base {}{longrope}",
                c.context_length,
                c.rope_base
            );
            if let Some(w) = c.sliding_window {
                let local = (0..c.n_layer)
                    .filter(|&il| c.layer_attention(il).window.is_some())
                    .count();
                line!(
                    r,
                    "attention     {local} of {} layers see the last {} positions (RoPE base {}), \
                     the others all",
                    c.n_layer,
                    w.window,
                    w.rope_base
                );
            }
            memory_plan(&mut r, &gguf, &c).await;
        }
        Err(e) => line!(r, "runnable      no: {e}"),
    }
    if list_tensors {
        for t in &gguf.tensors {
            line!(
                r,
                "  {:<32} {:<6} {:?} {} bytes",
                t.name,
                t.ty.to_string(),
                t.dims,
                t.n_bytes
            );
        }
    }
    emit(&r)
}
