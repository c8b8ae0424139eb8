//! `hearth bench`: prefill and decode speed, and how close decoding comes to the bandwidth
//! bound (every decoded token reads every weight once).

use crate::file::FileSource;
use crate::{AnyError, emit, load_with_header};
use hearth_engine::{Flow, GenerateOptions, Gpu, Model, SamplingParams, Session};
use hearth_gguf::ByteSource;
use hearth_text::{Format, Grammars, Tokenizer};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long)]
    model: PathBuf,
    /// Prompt lengths to time prefill at.
    #[arg(long, value_delimiter = ',', default_values_t = [128, 512, 2048])]
    prompt_lens: Vec<usize>,
    /// Context lengths to time decoding at.
    #[arg(long, value_delimiter = ',', default_values_t = [128, 1024, 4096])]
    ctx_lens: Vec<usize>,
    /// Tokens decoded per context length.
    #[arg(long, default_value_t = 32)]
    decode_tokens: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Also time each kernel with GPU timestamps: a prefill at the first prompt length and
    /// decoding at the first context length (adapters with timestamp queries).
    #[arg(long)]
    profile: bool,
    /// Also decode under this JSON schema (structured output), beside decoding without it,
    /// at each context length: the cost of the constraint.
    #[arg(long)]
    json_schema: Option<PathBuf>,
}

pub async fn run(args: BenchArgs) -> Result<(), AnyError> {
    let raw_load_s = raw_load(&args.model).await?;
    let (model, gguf, times) = load_with_header(&args.model).await?;
    let load_s = times.total_s;
    let c = &model.config;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut random_tokens = |n: usize| {
        (0..n)
            .map(|_| rng.random_range(0..c.n_vocab as u32))
            .collect::<Vec<u32>>()
    };
    let adapter = model.gpu.adapter_name();
    let bytes_per_token = model.weight_bytes_per_token();
    if !args.json {
        emit(&format!("adapter: {adapter}\n"))?;
        emit(&format!(
            "load: {load_s:.2} s, {:.2} s of it reading the file, {:.2} s waiting for pipelines \
             after the weights; reading the file and uploading its bytes alone: \
             {raw_load_s:.2} s (ratio {:.2}); weights read per decoded token: {:.1} MiB\n",
            times.read_s,
            model.load_profile.compile_wait_s,
            raw_load_s / load_s,
            bytes_per_token as f64 / (1 << 20) as f64
        ))?;
    }

    // The most any session's plan asked for; the peak itself is what the device's buffers held.
    let mut planned = 0u64;
    // Warm-up: compile-on-first-use drivers and lazy allocations stay out of the timings.
    let mut warm_up = Session::new(model.clone(), Some(64)).await?;
    warm_up.next_greedy(&random_tokens(8)).await?;
    planned = planned.max(warm_up.plan().total());
    drop(warm_up);

    let mut prefill = Vec::new();
    for &len in &args.prompt_lens {
        let len = len.min(c.context_length);
        let mut session = Session::new(model.clone(), Some(len + 1)).await?;
        let tokens = random_tokens(len);
        let start = Instant::now();
        session.next_greedy(&tokens).await?;
        let tps = len as f64 / start.elapsed().as_secs_f64();
        planned = planned.max(session.plan().total());
        if !args.json {
            emit(&format!("prefill {len:>6} tokens: {tps:>9.1} tokens/s\n"))?;
        }
        prefill.push(serde_json::json!({"prompt_len": len, "tokens_per_s": tps}));
    }

    let mut decode = Vec::new();
    for &ctx in &args.ctx_lens {
        let ctx = ctx
            .min(c.context_length.saturating_sub(args.decode_tokens + 1))
            .max(1);
        let mut session = Session::new(model.clone(), Some(ctx + args.decode_tokens + 1)).await?;
        let next = session.next_greedy(&random_tokens(ctx)).await?;
        let start = Instant::now();
        // As `generate` decodes: each step queued before the token it feeds is read back.
        hearth_engine::decode_greedy(&mut session, &[next], args.decode_tokens).await?;
        let tps = args.decode_tokens as f64 / start.elapsed().as_secs_f64();
        let gbps = bytes_per_token as f64 * tps / 1e9;
        planned = planned.max(session.plan().total());
        if !args.json {
            emit(&format!(
                "decode at {ctx:>6} context: {tps:>9.2} tokens/s, {gbps:.2} GB/s of weights\n"
            ))?;
        }
        decode.push(
            serde_json::json!({"ctx_len": ctx, "tokens_per_s": tps, "effective_gb_per_s": gbps}),
        );
    }
    let constrained = match &args.json_schema {
        Some(path) => {
            let tokenizer = Arc::new(Tokenizer::from_gguf(&gguf)?);
            let report = constrained(&model, &args, path, tokenizer, &mut random_tokens).await?;
            if !args.json {
                for r in report.as_array().into_iter().flatten() {
                    emit(&format!(
                        "decode at {:>6} context under the schema: {:>9.2} tokens/s, {:.2}x \
                         decoding without it ({} tokens)\n",
                        r["ctx_len"],
                        r["tokens_per_s"].as_f64().unwrap_or(0.0),
                        r["ratio"].as_f64().unwrap_or(0.0),
                        r["tokens"]
                    ))?;
                }
            }
            Some(report)
        }
        None => None,
    };
    let peak = model.gpu.memory().peak;
    let mut profile = if args.profile {
        Some(profile(&model, &args, &mut random_tokens).await?)
    } else {
        None
    };
    if let Some(p) = &mut profile {
        // The unprofiled time per token beside the kernels' own time: the difference is the
        // GPU idle between dispatches and the host's work (what fusing dispatches would save).
        let wall = |runs: &[serde_json::Value], key: &str, at: usize| {
            runs.iter()
                .find(|r| r[key].as_u64() == Some(at as u64))
                .and_then(|r| r["tokens_per_s"].as_f64())
                .map(|tps| 1e3 / tps)
        };
        let prefill_at = p["prefill"]["tokens"].as_u64().unwrap_or(0) as usize;
        p["prefill"]["wall_ms_per_token"] = wall(&prefill, "prompt_len", prefill_at).into();
        p["decode"]["wall_ms_per_token"] = wall(
            &decode,
            "ctx_len",
            p["ctx_len"].as_u64().unwrap_or(0) as usize,
        )
        .into();
    }
    if let (Some(p), false) = (&profile, args.json) {
        for (phase, table) in [("prefill", &p["prefill"]), ("decode", &p["decode"])] {
            emit(&format!(
                "{phase} profile, per token ({} tokens):\n",
                table["tokens"]
            ))?;
            for k in table["kernels"].as_array().into_iter().flatten() {
                emit(&format!(
                    "  {:<24} {:>8.3} ms {:>5.1}% {:>7.1} dispatches\n",
                    k["kernel"].as_str().unwrap_or(""),
                    k["ms_per_token"].as_f64().unwrap_or(0.0),
                    k["share"].as_f64().unwrap_or(0.0) * 100.0,
                    k["dispatches_per_token"].as_f64().unwrap_or(0.0)
                ))?;
            }
            let busy = table["kernel_ms_per_token"].as_f64().unwrap_or(0.0);
            let dispatches = table["dispatches_per_token"].as_f64().unwrap_or(0.0);
            let line = match table["wall_ms_per_token"].as_f64() {
                Some(wall) => format!(
                    "  kernels {busy:.3} ms of {wall:.3} ms per token unprofiled ({:.0}% outside \
                     kernels), {dispatches:.1} dispatches\n",
                    (1.0 - busy / wall).max(0.0) * 100.0
                ),
                None => format!("  kernels {busy:.3} ms per token, {dispatches:.1} dispatches\n"),
            };
            emit(&line)?;
        }
    }
    if args.json {
        let mut report = serde_json::json!({
            "adapter": {
                "name": model.gpu.info.name,
                "backend": format!("{:?}", model.gpu.info.backend),
            },
            "model": args.model.display().to_string(),
            "load_s": load_s,
            "raw_load_s": raw_load_s,
            // Time spent reading the file, and the rest (parsing, repacking, uploading,
            // compiling pipelines); after the weights were queued, the waits for pipelines
            // still compiling and for the GPU to take the last writes.
            "load_profile": {
                "read_s": times.read_s,
                "other_s": load_s - times.read_s,
                "compile_wait_s": model.load_profile.compile_wait_s,
                "gpu_wait_s": model.load_profile.gpu_wait_s,
            },
            "weight_bytes_per_token": bytes_per_token,
            "peak_gpu_bytes": peak,
            "planned_gpu_bytes": planned,
            "prefill": prefill,
            "decode": decode,
        });
        if let Some(p) = profile {
            report["profile"] = p;
        }
        if let Some(c) = constrained {
            report["constrained"] = c;
        }
        emit(&format!("{report}\n"))?;
    } else {
        emit(&format!(
            "peak GPU memory: {:.1} MiB (planned {:.1} MiB)\n",
            peak as f64 / (1 << 20) as f64,
            planned as f64 / (1 << 20) as f64
        ))?;
    }
    Ok(())
}

/// The floor under `load_s`: reading the whole file in 32 MiB pieces and writing each into a
/// GPU buffer of its own, nothing else (no parsing, repacking or pipelines), on a device of its
/// own that is gone before the model loads. The file is read once beforehand, untimed, so
/// neither this nor the model's load finds it colder than the other.
async fn raw_load(path: &std::path::Path) -> Result<f64, AnyError> {
    const PIECE: u64 = 32 << 20;
    let source = FileSource::open(path)?;
    let mut piece = vec![0u8; PIECE.min(source.len()) as usize];
    let pieces = |source: &FileSource| (0..source.len()).step_by(PIECE as usize);
    for offset in pieces(&source) {
        let n = PIECE.min(source.len() - offset) as usize;
        source.read_at(offset, &mut piece[..n]).await?;
    }
    let gpu = Gpu::new().await?;
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
    let start = Instant::now();
    let mut buffers = Vec::new();
    for offset in pieces(&source) {
        let n = PIECE.min(source.len() - offset);
        source.read_at(offset, &mut piece[..n as usize]).await?;
        let buffer = gpu.buffer("raw load", n.next_multiple_of(4), usage).await?;
        gpu.queue.write_buffer(&buffer, 0, &piece[..n as usize]);
        buffers.push(buffer);
    }
    gpu.work_done().await?;
    Ok(start.elapsed().as_secs_f64())
}

/// At each context length, greedy decoding of `decode_tokens` after a random prompt, under the
/// JSON schema in `path` and without a constraint, as `generate` decodes (end-of-turn tokens
/// ignored): tokens/s of each and their ratio.
async fn constrained(
    model: &Arc<Model>,
    args: &BenchArgs,
    path: &std::path::Path,
    tokenizer: Arc<Tokenizer>,
    random_tokens: &mut impl FnMut(usize) -> Vec<u32>,
) -> Result<serde_json::Value, AnyError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let schema = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let grammars = Grammars::new(tokenizer.clone(), model.config.n_vocab)?;
    let format = Format::JsonSchema(schema);
    let mut rows = Vec::new();
    for &ctx in &args.ctx_lens {
        let ctx = ctx
            .min(
                model
                    .config
                    .context_length
                    .saturating_sub(args.decode_tokens + 1),
            )
            .max(1);
        let prompt = random_tokens(ctx);
        let decode = async |constraint| -> Result<(f64, usize), AnyError> {
            let mut session =
                Session::new(model.clone(), Some(ctx + args.decode_tokens + 1)).await?;
            // The prompt but its last token prefilled first, and waited for: `generate` then
            // feeds one token, and its time is decoding alone.
            if ctx > 1 {
                session.next_greedy(&prompt[..ctx - 1]).await?;
            }
            let options = GenerateOptions {
                max_tokens: args.decode_tokens,
                sampling: SamplingParams::greedy(),
                constraint,
                ..Default::default()
            };
            let g = hearth_engine::generate(
                &mut session,
                &tokenizer,
                &prompt,
                &options,
                &mut |_, _| Flow::Continue,
            )
            .await?;
            Ok((g.decode_tokens_per_s(), g.tokens.len()))
        };
        let (free, _) = decode(None).await?;
        let (tps, tokens) = decode(Some(grammars.constrain(&format)?)).await?;
        rows.push(serde_json::json!({
            "ctx_len": ctx, "tokens_per_s": tps, "free_tokens_per_s": free,
            "ratio": tps / free.max(1e-9), "tokens": tokens,
        }));
    }
    Ok(serde_json::json!(rows))
}

/// GPU time per kernel for one prefill (first prompt length) and for decoding (first context
/// length), per token, largest first.
async fn profile(
    model: &Arc<Model>,
    args: &BenchArgs,
    random_tokens: &mut impl FnMut(usize) -> Vec<u32>,
) -> Result<serde_json::Value, AnyError> {
    let c = &model.config;
    let table = |times: Vec<(String, hearth_engine::KernelTime)>, tokens: usize| {
        let total: f64 = times.iter().map(|(_, t)| t.seconds).sum();
        let kernels: Vec<_> = times
            .iter()
            .map(|(name, t)| {
                serde_json::json!({
                    "kernel": name,
                    "ms_per_token": t.seconds * 1e3 / tokens as f64,
                    "share": t.seconds / total.max(1e-12),
                    "dispatches_per_token": t.dispatches as f64 / tokens as f64,
                })
            })
            .collect();
        let dispatches: u64 = times.iter().map(|(_, t)| t.dispatches).sum();
        serde_json::json!({
            "tokens": tokens,
            "kernels": kernels,
            "kernel_ms_per_token": total * 1e3 / tokens as f64,
            "dispatches_per_token": dispatches as f64 / tokens as f64,
        })
    };
    let prompt_len = args
        .prompt_lens
        .first()
        .copied()
        .unwrap_or(128)
        .min(c.context_length);
    let mut session = Session::new(model.clone(), Some(prompt_len + 1)).await?;
    model.gpu.set_profiling(true)?;
    session.next_greedy(&random_tokens(prompt_len)).await?;
    let prefill = table(model.gpu.take_profile().await?, prompt_len);
    model.gpu.set_profiling(false)?;

    let ctx = args
        .ctx_lens
        .first()
        .copied()
        .unwrap_or(128)
        .min(c.context_length.saturating_sub(args.decode_tokens + 1))
        .max(1);
    let mut session = Session::new(model.clone(), Some(ctx + args.decode_tokens + 1)).await?;
    let next = session.next_greedy(&random_tokens(ctx)).await?;
    model.gpu.set_profiling(true)?;
    hearth_engine::decode_greedy(&mut session, &[next], args.decode_tokens).await?;
    let decode = table(model.gpu.take_profile().await?, args.decode_tokens.max(1));
    model.gpu.set_profiling(false)?;
    Ok(serde_json::json!({"prefill": prefill, "decode": decode, "ctx_len": ctx}))
}
