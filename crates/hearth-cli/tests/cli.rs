//! The `hearth` binary end to end: its outputs against llama.cpp's, and its behaviour on bad
//! input (one clear line on stderr, a non-zero exit, never a panic).

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn hearth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("hearth runs")
}

fn reference(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(format!("{name}.json"))).unwrap())
        .unwrap()
}

fn joined(v: &serde_json::Value) -> String {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn logits_command_writes_raw_f32_matching_llama_cpp() {
    let meta = reference("tiny-f32-mha");
    let case = &meta["logits"][0];
    let out = std::env::temp_dir().join(format!("hearth-logits-{}.f32", std::process::id()));
    let model = fixtures().join("tiny-f32-mha.gguf");
    let r = hearth(&[
        "logits",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        &joined(&case["tokens"]),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got = std::fs::read(&out).unwrap();
    let want = std::fs::read(fixtures().join(case["file"].as_str().unwrap())).unwrap();
    assert_eq!(got.len(), want.len(), "[n_tokens, n_vocab] f32, no header");
    let f = |b: &[u8]| {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect::<Vec<_>>()
    };
    let max_diff = f(&got)
        .iter()
        .zip(f(&want))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_diff < 0.05,
        "largest logit difference from llama.cpp: {max_diff}"
    );
    std::fs::remove_file(out).ok();
}

#[test]
fn generate_json_reports_llama_cpp_greedy_tokens() {
    let meta = reference("tiny-f16-gqa-tied");
    let g = &meta["greedy"];
    let model = fixtures().join("tiny-f16-gqa-tied.gguf");
    let n = g["tokens"].as_array().unwrap().len().to_string();
    let r = hearth(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        &joined(&g["prompt"]),
        "--max-tokens",
        &n,
        "--temperature",
        "0",
        "--ignore-eos",
        "--json",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stdout = String::from_utf8(r.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["tokens"], g["tokens"]);
    assert!(last["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn split_model_generates_llama_cpps_greedy_tokens_from_its_first_part() {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("split/split.json")).unwrap(),
    )
    .unwrap();
    let first = fixtures()
        .join("split")
        .join(meta["parts"][0].as_str().unwrap());
    let n = meta["tokens"].as_array().unwrap().len().to_string();
    let r = hearth(&[
        "generate",
        "--model",
        first.to_str().unwrap(),
        "--tokens",
        &joined(&meta["prompt"]),
        "--max-tokens",
        &n,
        "--temperature",
        "0",
        "--ignore-eos",
        "--json",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8(r.stdout).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(last["tokens"], meta["tokens"]);
    // The same tokens as the unsplit model's llama.cpp reference.
    assert_eq!(last["tokens"], reference("tiny-q8_0")["greedy"]["tokens"]);
}

#[test]
fn split_model_with_a_missing_part_names_it() {
    let dir = tempdir("split");
    for part in [
        "tiny-q8_0-00001-of-00003.gguf",
        "tiny-q8_0-00003-of-00003.gguf",
    ] {
        std::fs::copy(fixtures().join("split").join(part), dir.join(part)).unwrap();
    }
    let first = dir.join("tiny-q8_0-00001-of-00003.gguf");
    expect_clean_failure(
        &["inspect", "--model", first.to_str().unwrap()],
        "tiny-q8_0-00002-of-00003.gguf",
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn inspect_describes_the_model() {
    let model = fixtures().join("tiny-longrope.gguf");
    let r = hearth(&["inspect", "--model", model.to_str().unwrap()]);
    assert!(r.status.success());
    let text = String::from_utf8(r.stdout).unwrap();
    for want in [
        "phi3",
        "4 query / 2 key-value, head width 64 (48 rotary)",
        "LongRoPE (original context 256",
        "tied to token_embd",
        "F16",
    ] {
        assert!(text.contains(want), "missing '{want}' in:\n{text}");
    }
}

fn expect_clean_failure(args: &[&str], needle: &str) {
    let r = hearth(args);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error:") && !l.contains("XDG_RUNTIME_DIR"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "{args:?}: expected one error line, got: {stderr}"
    );
    assert!(
        errors[0].contains(needle),
        "{args:?}: '{}' lacks '{needle}'",
        errors[0]
    );
}

#[test]
fn bad_files_fail_with_one_clear_message() {
    let dir = tempdir("bad");
    let good = std::fs::read(fixtures().join("tiny-q8_0.gguf")).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let empty = write("empty.gguf", b"");
    let text = write("text.gguf", b"this is not a model at all, just some text");
    let truncated = write("truncated.gguf", &good[..good.len() / 2]);
    let cut_header = write("cut-header.gguf", &good[..300]);
    // A different architecture name, same length so every offset stays valid.
    let mut renamed = good.clone();
    let at = renamed.windows(4).position(|w| w == b"phi3").unwrap();
    renamed[at..at + 4].copy_from_slice(b"mamb");
    let renamed = write("renamed.gguf", &renamed);
    // A tensor the forward pass needs, renamed away (same length, offsets intact).
    let mut missing = good.clone();
    let at = missing
        .windows(21)
        .position(|w| w == b"blk.1.ffn_down.weight")
        .unwrap();
    missing[at..at + 21].copy_from_slice(b"blk.1.ffn_dowX.weight");
    let missing = write("missing-tensor.gguf", &missing);
    // A matrix with its two dimensions swapped: same bytes, wrong shape (f32, so any shape is
    // a whole number of blocks).
    let mut misshaped = std::fs::read(fixtures().join("tiny-f32-mha.gguf")).unwrap();
    let name = b"blk.0.ffn_down.weight";
    let at = misshaped
        .windows(name.len())
        .position(|w| w == name)
        .unwrap()
        + name.len();
    assert_eq!(
        misshaped[at..at + 4],
        2u32.to_le_bytes(),
        "a matrix has two dimensions"
    );
    let (cols, rows) = (at + 4, at + 12);
    let swapped = [&misshaped[rows..rows + 8], &misshaped[cols..cols + 8]].concat();
    misshaped[cols..cols + 16].copy_from_slice(&swapped);
    let misshaped = write("misshaped.gguf", &misshaped);
    for (path, needle) in [
        (empty.as_str(), "truncated"),
        (text.as_str(), "not a GGUF file"),
        (truncated.as_str(), "truncated"),
        (cut_header.as_str(), "more than the file can hold"),
        (renamed.as_str(), "architecture 'mamb' is not supported"),
        (
            missing.as_str(),
            "tensor 'blk.1.ffn_down.weight' is missing",
        ),
        (
            misshaped.as_str(),
            "tensor 'blk.0.ffn_down.weight' has shape",
        ),
    ] {
        for cmd in ["inspect", "generate"] {
            let mut args = vec![cmd, "--model", path];
            if cmd == "generate" {
                args.extend(["--tokens", "1,2"]);
            }
            if cmd == "inspect"
                && (needle.starts_with("architecture") || needle.starts_with("tensor"))
            {
                continue; // inspect describes files it cannot run
            }
            expect_clean_failure(&args, needle);
        }
    }
    expect_clean_failure(
        &[
            "generate",
            "--model",
            dir.join("missing.gguf").to_str().unwrap(),
            "--tokens",
            "1",
        ],
        "cannot open",
    );
    let model = fixtures().join("tiny-q8_0.gguf");
    let model = model.to_str().unwrap();
    expect_clean_failure(
        &["generate", "--model", model, "--tokens", "1,99999"],
        "outside the model's vocabulary",
    );
    expect_clean_failure(
        &[
            "generate", "--model", model, "--tokens", "1,2,3", "--ctx", "2",
        ],
        "context window holds 2",
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn tokenize_json_matches_llama_cpp_without_a_gpu_load() {
    let dir = fixtures().join("text");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("vocab-gpt-4o.json")).unwrap())
            .unwrap();
    let case = meta["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["special"] == true && c["text"].as_str().unwrap().contains("<|im_start|>"))
        .unwrap();
    // The vocabulary-only file has no weights: tokenize must not need them.
    let r = hearth(&[
        "tokenize",
        "--model",
        dir.join("vocab-gpt-4o.gguf").to_str().unwrap(),
        "--text",
        case["text"].as_str().unwrap(),
        "--json",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8(r.stdout).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(last["tokens"], case["ids"]);
}

#[test]
fn generate_prompt_text_equals_generate_tokens() {
    let model = fixtures().join("tiny-q6_k.gguf");
    let model = model.to_str().unwrap();
    let prompt = "<|im_start|>user<|im_sep|>Hello there<|im_end|><|im_start|>assistant<|im_sep|>";
    let tok = hearth(&["tokenize", "--model", model, "--text", prompt, "--json"]);
    let ids: serde_json::Value = serde_json::from_str(
        String::from_utf8(tok.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut all = vec![
            "generate",
            "--model",
            model,
            "--temperature",
            "0",
            "--max-tokens",
            "12",
            "--ignore-eos",
            "--json",
        ];
        all.extend_from_slice(args);
        let r = hearth(&all);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        serde_json::from_str::<serde_json::Value>(
            String::from_utf8(r.stdout).unwrap().lines().last().unwrap(),
        )
        .unwrap()
    };
    let by_text = run(&["--prompt", prompt]);
    let by_ids = run(&["--tokens", &joined(&ids["tokens"])]);
    assert_eq!(by_text["tokens"], by_ids["tokens"]);
    assert_eq!(by_text["tokens"].as_array().unwrap().len(), 12);
    assert!(by_text["text"].is_string());
    // Without --json the text streams to stdout and the statistics go to stderr.
    let r = hearth(&[
        "generate",
        "--model",
        model,
        "--prompt",
        prompt,
        "--temperature",
        "0",
        "--max-tokens",
        "12",
        "--ignore-eos",
    ]);
    assert!(r.status.success());
    assert_eq!(
        String::from_utf8(r.stdout).unwrap().trim_end_matches('\n'),
        by_text["text"].as_str().unwrap()
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("tokens/s"));
}

#[test]
fn chat_keeps_the_conversation_cached_between_turns() {
    let model = fixtures().join("tiny-q4_k_m.gguf");
    let out = chat(
        &[
            "--model",
            model.to_str().unwrap(),
            "--system",
            "Be brief.",
            "--max-tokens",
            "8",
            "--seed",
            "5",
        ],
        "Hello there\nTell me more\n/reset\nAgain\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let reports: Vec<&str> = stderr.lines().filter(|l| l.contains("tokens/s")).collect();
    assert_eq!(reports.len(), 3, "{stderr}");
    assert!(reports[0].contains(" 0 reused"), "{}", reports[0]);
    assert!(
        !reports[1].contains(" 0 reused"),
        "the second turn reuses the first: {}",
        reports[1]
    );
    assert!(stderr.contains("(new conversation)"));
}

#[test]
fn bench_profile_times_every_kernel_per_token() {
    let model = fixtures().join("tiny-q4_k_m.gguf");
    let r = hearth(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--prompt-lens",
        "8",
        "--ctx-lens",
        "8",
        "--decode-tokens",
        "3",
        "--profile",
        "--json",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stdout = String::from_utf8(r.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for (phase, tokens) in [("prefill", 8), ("decode", 3)] {
        let table = &report["profile"][phase];
        assert_eq!(table["tokens"], tokens, "{phase}");
        let kernels = table["kernels"].as_array().unwrap();
        let per_token = |name: &str| {
            kernels
                .iter()
                .find(|k| k["kernel"] == name)
                .map(|k| k["dispatches_per_token"].as_f64().unwrap())
        };
        // Two layers: two norms each and the final one, for every forward pass; one argmax.
        let passes_per_token = if phase == "decode" {
            1.0
        } else {
            1.0 / tokens as f64
        };
        assert_eq!(
            per_token("RmsNorm"),
            Some(5.0 * passes_per_token),
            "{phase}: {kernels:?}"
        );
        assert_eq!(per_token("Argmax"), Some(passes_per_token), "{phase}");
        assert!(
            kernels
                .iter()
                .any(|k| k["kernel"].as_str().unwrap().starts_with("Mat")),
            "{phase}: matrix kernels are timed"
        );
        let shares: f64 = kernels.iter().map(|k| k["share"].as_f64().unwrap()).sum();
        assert!(
            (shares - 1.0).abs() < 1e-6,
            "{phase}: shares sum to {shares}"
        );
        assert!(
            kernels
                .iter()
                .all(|k| k["ms_per_token"].as_f64().unwrap() >= 0.0)
        );
        let kernel_ms: f64 = kernels
            .iter()
            .map(|k| k["ms_per_token"].as_f64().unwrap())
            .sum();
        assert!(kernel_ms > 0.0, "{phase}: time was measured");
        assert!(
            (table["kernel_ms_per_token"].as_f64().unwrap() - kernel_ms).abs() < 1e-9,
            "{phase}: the total is the kernels' sum"
        );
        let dispatches: f64 = kernels
            .iter()
            .map(|k| k["dispatches_per_token"].as_f64().unwrap())
            .sum();
        assert!(
            (table["dispatches_per_token"].as_f64().unwrap() - dispatches).abs() < 1e-9,
            "{phase}: all dispatches counted"
        );
        // The unprofiled run at the same length, for the time outside kernels.
        let runs = report[phase].as_array().unwrap();
        let tps = runs[0]["tokens_per_s"].as_f64().unwrap();
        assert!(
            (table["wall_ms_per_token"].as_f64().unwrap() - 1e3 / tps).abs() < 1e-9,
            "{phase}: {table}"
        );
    }
}

/// Mean and standard deviation of `v`.
fn spread(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn synthetic_models_have_the_intended_weights_and_varied_logits() {
    for quant in ["q4_k_m", "q4_0", "q8_0", "f16"] {
        let path =
            std::env::temp_dir().join(format!("hearth-synth-{quant}-{}.gguf", std::process::id()));
        let out = path.to_str().unwrap();
        let r = hearth(&["synth", "--shape", "tiny", "--quant", quant, "--out", out]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let bytes = std::fs::read(&path).unwrap();
        let source = hearth_gguf::SliceSource(&bytes);
        let gguf = pollster::block_on(hearth_gguf::read_header(&source)).unwrap();
        let mut types = std::collections::BTreeSet::new();
        for t in &gguf.tensors {
            let raw = &bytes[t.offset as usize..(t.offset + t.n_bytes) as usize];
            let w = hearth_gguf::quant::dequantize(t.ty, raw).unwrap();
            let (mean, std) = spread(&w);
            let largest = w.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
            let what = format!(
                "{quant}: {} ({}): mean {mean}, std {std}, largest {largest}",
                t.name, t.ty
            );
            if t.dims.len() == 1 {
                // Norm gains: near one.
                assert!(w.iter().all(|&x| (1.0..1.1).contains(&x)), "{what}");
            } else {
                // Small random weights of both signs, none flushed to zero: |w| up to ~0.05.
                assert!(
                    std > 0.005 && largest <= 0.06 && mean.abs() < 0.01,
                    "{what}"
                );
                types.insert(t.ty.to_string());
            }
        }
        if quant == "q4_k_m" {
            let expected: std::collections::BTreeSet<String> =
                ["Q4_K", "Q6_K"].map(String::from).into();
            assert_eq!(types, expected, "Q4_K_M's recipe");
        }
        // The model's answer depends on its input: logits vary over the vocabulary and between
        // positions.
        let logits =
            std::env::temp_dir().join(format!("hearth-synth-{quant}-{}.f32", std::process::id()));
        let r = hearth(&[
            "logits",
            "--model",
            out,
            "--tokens",
            "5,100,17,250",
            "--out",
            logits.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let values: Vec<f32> = std::fs::read(&logits)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let rows: Vec<&[f32]> = values.chunks(values.len() / 4).collect();
        for (i, row) in rows.iter().enumerate() {
            assert!(
                row.iter().all(|x| x.is_finite()),
                "{quant}: position {i} has non-finite logits"
            );
            assert!(
                spread(row).1 > 1e-3,
                "{quant}: position {i}'s logits are constant"
            );
        }
        assert_ne!(
            rows[0], rows[3],
            "{quant}: logits do not depend on the input"
        );
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&logits);
    }
}

#[test]
fn chat_calls_a_tool_takes_its_result_and_answers_from_the_cache() {
    let dir = tempdir("chat-tools");
    let tools = dir.join("tools.json");
    std::fs::write(
        &tools,
        r#"[{"type": "function", "function": {"name": "add", "parameters": {"type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"], "additionalProperties": false}}}]"#,
    )
    .unwrap();
    let model = fixtures().join("tiny-q8_0.gguf");
    let out = chat(
        &[
            "--model",
            model.to_str().unwrap(),
            "--tools",
            tools.to_str().unwrap(),
            "--tool-choice",
            "add",
            "--max-tokens",
            "300",
            "--seed",
            "3",
        ],
        "What is 2 + 3?\n5\n",
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    // Each reply is a call to `add` (the choice forces it) with integer arguments.
    let calls: Vec<&str> = stdout.lines().filter(|l| l.starts_with("→ add(")).collect();
    assert_eq!(calls.len(), 2, "{stdout}");
    assert!(
        calls[0].ends_with("[call_0]") && calls[1].ends_with("[call_1]"),
        "{stdout}"
    );
    for call in calls {
        let arguments = &call["→ add(".len()..call.rfind(") [").unwrap()];
        // As the model wrote them: integers of any length, never rewritten as 5.07e20.
        let written = arguments;
        let arguments: serde_json::Value = serde_json::from_str(written).unwrap();
        let integer = |v: &serde_json::Value| v.as_f64().is_some_and(|x| x.fract() == 0.0);
        assert!(
            integer(&arguments["a"]) && integer(&arguments["b"]) && !written.contains(['.', 'e']),
            "{written}"
        );
    }
    assert!(stderr.contains("result of add("), "{stderr}");
    let reports: Vec<&str> = stderr.lines().filter(|l| l.contains("tokens/s")).collect();
    assert_eq!(reports.len(), 2, "{stderr}");
    assert!(!reports[1].contains(" 0 reused"), "{}", reports[1]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn generate_json_schema_writes_json_that_validates() {
    let dir = tempdir("generate-schema");
    let schema = dir.join("schema.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 9},
            "tag": {"enum": ["x", "y"]}}, "required": ["n", "tag"], "additionalProperties": false}"#,
    )
    .unwrap();
    let model = fixtures().join("tiny-q8_0.gguf");
    for seed in ["1", "2"] {
        let r = hearth(&[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "Hello: ",
            "--temperature",
            "1",
            "--seed",
            seed,
            "--max-tokens",
            "80",
            "--json-schema",
            schema.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let text = String::from_utf8(r.stdout).unwrap();
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        let n = value["n"].as_i64().unwrap();
        assert!((3..=9).contains(&n), "{value}");
        assert!(
            ["x", "y"].contains(&value["tag"].as_str().unwrap()),
            "{value}"
        );
        assert_eq!(value.as_object().unwrap().len(), 2, "{value}");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// A fresh directory for one test's files.
fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `hearth chat ARGS` with `input` typed on its standard input, run to the end.
fn chat(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("chat")
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}
