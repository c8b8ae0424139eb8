//! The memory plan against what a session really holds: every buffer Hearth makes goes
//! through `Gpu`, which counts it while it lives, so the peak it saw is what the plan must
//! equal (within 5%) — for each fixture model, a prompt longer than one micro-batch that fills
//! the window, decoding to its end, and every position's logits.

use hearth_engine::{Gpu, Model, Session, plan};
use hearth_gguf::{SliceSource, read_header};
use hearth_model::Config;
use std::path::PathBuf;
use std::sync::Arc;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// How a case fills the window.
#[derive(Clone, Copy, Debug)]
enum Use {
    /// A prompt, then greedy decoding to the end of the window.
    Generate,
    /// Every position's logits of a prompt filling the window.
    AllLogits,
}

/// `a` within 5% of `b`.
fn within_5_percent(a: u64, b: u64) -> bool {
    a.abs_diff(b) * 20 <= b
}

/// `file` at a `ctx`-token window used as `use_`; `ubatches`: the prompt must span several
/// micro-batches.
async fn check(file: PathBuf, ctx: usize, use_: Use, ubatches: bool) {
    let what = format!("{} at {ctx} tokens, {use_:?}", file.display());
    let bytes = std::fs::read(&file).unwrap();
    let source = SliceSource(&bytes);
    let gguf = read_header(&source).await.unwrap();
    let config = Config::from_gguf(&gguf).unwrap();
    let gpu = Arc::new(Gpu::new().await.unwrap());
    let planned = plan(&gpu, &gguf, &config, Some(ctx), None).unwrap();
    assert_eq!(planned.ubatch < ctx, ubatches, "{what}: micro-batches");
    let model = Arc::new(
        Model::load(gpu.clone(), &gguf, &source, &mut |_, _| {})
            .await
            .unwrap(),
    );
    let mut session = Session::from_plan(model, &planned).await.unwrap();
    let prompt: Vec<u32> = (0..ctx - 8)
        .map(|i| (i * 7 % config.n_vocab) as u32)
        .collect();
    let expected = match use_ {
        Use::Generate => {
            let mut next = session.next_greedy(&prompt).await.unwrap();
            while session.history().len() < ctx {
                next = session.next_greedy(&[next]).await.unwrap();
            }
            planned.total()
        }
        Use::AllLogits => {
            let all = [prompt, vec![3; 8]].concat();
            session.logits(&all).await.unwrap();
            planned.total() + planned.all_logits
        }
    };
    assert_eq!(
        session.kv_bytes(),
        planned.kv_cache,
        "{what}: the KV cache at the full window"
    );
    let peak = gpu.memory().peak;
    assert!(
        within_5_percent(peak, expected),
        "{what}: peak {peak} bytes, planned {expected} ({planned:?})"
    );
}

macro_rules! memory_tests {
    ($($test:ident => $file:literal),* $(,)?) => {
        mod generate {
            $(#[test] fn $test() {
                pollster::block_on(super::check(super::fixtures().join($file), 700, super::Use::Generate, true));
            })*
        }
        mod all_logits {
            $(#[test] fn $test() {
                pollster::block_on(super::check(super::fixtures().join($file), 700, super::Use::AllLogits, true));
            })*
        }
    };
}

memory_tests! {
    f32_mha => "tiny-f32-mha.gguf",
    q4_k_m => "tiny-q4_k_m.gguf",
    q8_0 => "tiny-q8_0.gguf",
    longrope => "tiny-longrope.gguf",
    // Sliding-window layers keep a ring of their window and a micro-batch, not the window.
    gemma3_rings => "tiny-gemma3-q4_k_m.gguf",
}

/// The real model: most of its memory is weights; its vocabulary (49,152 tokens) makes every
/// position's logits come in chunks (85 rows each).
#[test]
fn smollm2_plan_equals_its_allocation() {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(file.exists(), "run scripts/fetch-default-model.sh");
    for use_ in [Use::Generate, Use::AllLogits] {
        pollster::block_on(check(file.clone(), 200, use_, false));
    }
}

/// A budget (what a page says its device has) sizes the window: all of it where the budget
/// holds the plan, a shorter one that fits where it holds less, and a refusal that names what
/// fits where the window asked for does not, or what to choose where nothing does.
#[test]
fn a_budget_sizes_the_window_and_refusals_say_what_fits() {
    pollster::block_on(async {
        let bytes = std::fs::read(fixtures().join("tiny-q8_0.gguf")).unwrap();
        let gguf = read_header(&SliceSource(&bytes)).await.unwrap();
        let config = Config::from_gguf(&gguf).unwrap();
        let gpu = Gpu::new().await.unwrap();
        let whole = plan(&gpu, &gguf, &config, None, None).unwrap();
        assert_eq!(whole.ctx, config.context_length);
        assert_eq!(
            plan(&gpu, &gguf, &config, None, Some(whole.total())).unwrap(),
            whole
        );

        // What a quarter of the window takes, as the budget: the default window is that quarter.
        let quarter = plan(&gpu, &gguf, &config, Some(whole.ctx / 4), None).unwrap();
        let budget = quarter.total();
        assert_eq!(
            plan(&gpu, &gguf, &config, None, Some(budget)).unwrap(),
            quarter
        );
        // A window beyond the budget's reach: refused, naming the longest (within the trained
        // window) that fits in smaller micro-batches, which does fit, one token more not.
        let asked = plan(&gpu, &gguf, &config, Some(4 * whole.ctx), Some(budget));
        let err = asked.unwrap_err().to_string();
        assert!(err.contains("but the GPU has"), "{err}");
        let (_, after) = err.split_once("a context window of up to ").expect(&err);
        let longest: usize = after.split(' ').next().unwrap().parse().unwrap();
        assert!(longest >= quarter.ctx && longest <= whole.ctx, "{err}");
        assert!(plan(&gpu, &gguf, &config, Some(longest), Some(budget)).is_ok());
        if longest < whole.ctx {
            assert!(plan(&gpu, &gguf, &config, Some(longest + 1), Some(budget)).is_err());
        }

        let err = plan(&gpu, &gguf, &config, None, Some(whole.weights / 2)).unwrap_err();
        assert_eq!(err.code(), "out-of-memory");
        assert!(
            err.to_string().contains("even a short window does not fit"),
            "{err}"
        );
    });
}

/// A buffer made without waiting for the device's verdict: a refusal comes back from its check,
/// by polling or by waiting, as the typed error a waited-for buffer gives, and the memory
/// count forgets the buffer once it is dropped.
#[test]
fn a_refused_buffer_is_reported_by_its_later_check() {
    pollster::block_on(async {
        let gpu = Gpu::new().await.unwrap();
        let before = gpu.memory().live;
        let too_big = gpu.limits.max_buffer_size + 16;
        let usage = wgpu::BufferUsages::STORAGE;
        let (buffer, mut check) = gpu.buffer_checked_later("too big", too_big, usage);
        let polled = check
            .poll_now(&gpu)
            .expect("native verdicts are in at once");
        let message = polled.unwrap_err().to_string();
        assert!(message.contains("creating too big"), "{message}");
        drop(buffer);
        assert_eq!(gpu.memory().live, before);

        let (_buffer, check) = gpu.buffer_checked_later("too big", too_big, usage);
        let waited = check.wait(&gpu).await.unwrap_err().to_string();
        assert_eq!(waited, message);
        let direct = gpu.buffer("too big", too_big, usage).await.unwrap_err();
        assert_eq!(direct.to_string(), message);

        let (_fine, check) = gpu.buffer_checked_later("fine", 1024, usage);
        check.wait(&gpu).await.unwrap();
        gpu.check().unwrap();
    });
}
