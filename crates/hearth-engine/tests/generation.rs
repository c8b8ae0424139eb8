//! Generation on a real (tiny, fixture) model: multi-turn cache reuse, GPU-side candidate
//! selection against a CPU computation over the full logits, sampling determinism, stop
//! strings and abort.

use hearth_engine::sampling::CANDIDATES;
use hearth_engine::{
    FinishReason, Flow, GenerateOptions, Gpu, GreedyDecoder, Model, SamplingParams, Session,
    decode_greedy, generate,
};
use hearth_gguf::{SliceSource, read_header};
use hearth_text::Tokenizer;
use std::path::PathBuf;
use std::sync::Arc;

fn load(file: &str) -> (Arc<Model>, Tokenizer) {
    load_with(file, |_| {})
}

fn load_with(file: &str, configure: impl FnOnce(&mut Gpu)) -> (Arc<Model>, Tokenizer) {
    pollster::block_on(async {
        let bytes = std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures")
                .join(file),
        )
        .unwrap();
        let source = SliceSource(&bytes);
        let gguf = read_header(&source).await.unwrap();
        let mut gpu = Gpu::new().await.unwrap();
        configure(&mut gpu);
        let gpu = Arc::new(gpu);
        let model = Model::load(gpu, &gguf, &source, &mut |_, _| {})
            .await
            .unwrap();
        (Arc::new(model), Tokenizer::from_gguf(&gguf).unwrap())
    })
}

fn run(
    session: &mut Session,
    tok: &Tokenizer,
    prompt: &[u32],
    options: &GenerateOptions,
) -> hearth_engine::Generated {
    pollster::block_on(generate(session, tok, prompt, options, &mut |_, _| {
        Flow::Continue
    }))
    .unwrap()
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampling: SamplingParams::greedy(),
        ..Default::default()
    }
}

#[test]
fn second_turn_prefills_only_new_tokens_and_matches_a_fresh_run() {
    let (model, tok) = load("tiny-q4_k_m.gguf");
    let turn1 = tok
        .encode(
            "<|im_start|>user<|im_sep|>Hello there<|im_end|><|im_start|>assistant<|im_sep|>",
            true,
        )
        .unwrap();
    let mut session = pollster::block_on(Session::new(model.clone(), Some(256))).unwrap();
    let first = run(&mut session, &tok, &turn1, &greedy(10));
    assert_eq!(first.reused_tokens, 0);

    let mut turn2 = turn1.clone();
    turn2.extend(&first.tokens);
    let next_turn = "<|im_end|><|im_start|>user<|im_sep|>And again?<|im_end|>\
                     <|im_start|>assistant<|im_sep|>";
    turn2.extend(tok.encode(next_turn, true).unwrap());
    let second = run(&mut session, &tok, &turn2, &greedy(10));
    // Everything but the last generated token (never fed back) was cached.
    assert_eq!(second.reused_tokens, turn1.len() + first.tokens.len() - 1);

    let mut fresh = pollster::block_on(Session::new(model, Some(256))).unwrap();
    let whole = run(&mut fresh, &tok, &turn2, &greedy(10));
    assert_eq!(whole.reused_tokens, 0);
    assert_eq!(
        second.tokens, whole.tokens,
        "a reused cache must give what a fresh run gives"
    );

    // Editing an earlier turn reuses only the common prefix.
    let mut edited = turn2.clone();
    edited[3] = (edited[3] + 1) % 300;
    let third = run(&mut session, &tok, &edited, &greedy(4));
    assert_eq!(third.reused_tokens, 3);
}

#[test]
fn gpu_candidates_equal_cpu_penalties_over_full_logits() {
    let (model, _) = load("tiny-q8_0.gguf");
    let prompt: Vec<u32> = vec![5, 17, 17, 200, 31, 17, 99, 5, 250, 42];
    let sampling = SamplingParams {
        repeat_penalty: 1.7,
        presence_penalty: 0.4,
        frequency_penalty: 0.3,
        penalty_last_n: 6,
        logit_bias: vec![(7, 3.0), (17, -0.5), (319, 60.0)],
        ..Default::default()
    };
    let mut full = pollster::block_on(Session::new(model.clone(), Some(64))).unwrap();
    let logits = pollster::block_on(full.logits(&prompt)).unwrap();
    let n_vocab = model.config.n_vocab;
    let mut last: Vec<f32> = logits[logits.len() - n_vocab..].to_vec();
    // The definition (llama.cpp's penalties sampler, then logit bias):
    let window = &prompt[prompt.len() - 6..];
    for t in 0..n_vocab as u32 {
        let count = window.iter().filter(|&&w| w == t).count() as f32;
        let l = &mut last[t as usize];
        if count > 0.0 {
            *l = if *l > 0.0 { *l / 1.7 } else { *l * 1.7 };
            *l -= count * 0.3 + 0.4;
        }
        *l += sampling
            .logit_bias
            .iter()
            .filter(|b| b.0 == t)
            .map(|b| b.1)
            .sum::<f32>();
    }
    let mut order: Vec<u32> = (0..n_vocab as u32).collect();
    order.sort_by(|&a, &b| {
        last[b as usize]
            .total_cmp(&last[a as usize])
            .then(a.cmp(&b))
    });

    let mut session = pollster::block_on(Session::new(model, Some(64))).unwrap();
    let candidates = pollster::block_on(session.next_candidates(&prompt, &sampling)).unwrap();
    assert_eq!(candidates.len(), CANDIDATES.min(n_vocab));
    assert_eq!(candidates[0].0, 319, "a +60 bias makes token 319 the best");
    for (i, &(id, value)) in candidates.iter().enumerate() {
        assert!(
            (value - last[id as usize]).abs() < 1e-3,
            "candidate {i}: token {id} has {value}, expected {}",
            last[id as usize]
        );
        assert!(
            (value - last[order[i] as usize]).abs() < 1e-3,
            "candidate {i} is not the {i}-th best"
        );
    }
}

#[test]
fn sampling_is_seeded_and_top_k_one_is_greedy() {
    let (model, tok) = load("tiny-q5_k_m.gguf");
    let prompt: Vec<u32> = vec![10, 20, 30, 40];
    let sample = |seed: u64, top_k: usize| {
        let mut s = pollster::block_on(Session::new(model.clone(), Some(64))).unwrap();
        let sampling = SamplingParams {
            temperature: 1.5,
            top_k,
            top_p: 1.0,
            min_p: 0.0,
            seed,
            ..Default::default()
        };
        run(
            &mut s,
            &tok,
            &prompt,
            &GenerateOptions {
                max_tokens: 24,
                sampling,
                ..Default::default()
            },
        )
        .tokens
    };
    assert_eq!(sample(42, 0), sample(42, 0), "same seed, same tokens");
    assert_ne!(sample(42, 0), sample(43, 0), "another seed, other tokens");
    let mut s = pollster::block_on(Session::new(model.clone(), Some(64))).unwrap();
    let greedy_tokens = run(&mut s, &tok, &prompt, &greedy(24)).tokens;
    assert_eq!(sample(7, 1), greedy_tokens, "top-k 1 is greedy");
}

#[test]
fn stop_strings_and_tokens_cut_the_output() {
    let (model, tok) = load("tiny-f16-gqa-tied.gguf");
    let prompt: Vec<u32> = vec![72, 101, 108, 108, 111];
    let mut s = pollster::block_on(Session::new(model.clone(), Some(128))).unwrap();
    let free = run(&mut s, &tok, &prompt, &greedy(30));
    assert_eq!(free.finish, FinishReason::Length);
    let text = free.text.clone();
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() >= 12, "need some text to cut: {text:?}");
    let stop: String = chars[8..11].iter().collect();
    let expected_cut = &text[..text.find(&stop).unwrap()];

    let mut streamed = String::new();
    let mut s = pollster::block_on(Session::new(model.clone(), Some(128))).unwrap();
    let options = GenerateOptions {
        stop: vec![stop.clone()],
        ..greedy(30)
    };
    let cut = pollster::block_on(generate(&mut s, &tok, &prompt, &options, &mut |t, _| {
        streamed.push_str(t);
        Flow::Continue
    }))
    .unwrap();
    assert_eq!(cut.finish, FinishReason::Stop);
    assert_eq!(cut.text, expected_cut);
    assert_eq!(
        streamed, expected_cut,
        "the stop string never reaches the stream"
    );

    let stop_token = free.tokens[5];
    let mut s = pollster::block_on(Session::new(model, Some(128))).unwrap();
    let by_token = run(
        &mut s,
        &tok,
        &prompt,
        &GenerateOptions {
            stop_tokens: vec![stop_token],
            ..greedy(30)
        },
    );
    assert_eq!(by_token.finish, FinishReason::Stop);
    assert_eq!(
        by_token.tokens,
        free.tokens[..free.tokens.iter().position(|&t| t == stop_token).unwrap()]
    );
}

#[test]
fn abort_and_limits_leave_the_session_usable() {
    let (model, tok) = load("tiny-q4_0.gguf");
    let prompt: Vec<u32> = (1..20).collect();
    let mut s = pollster::block_on(Session::new(model.clone(), Some(40))).unwrap();
    let mut calls = 0;
    let aborted = pollster::block_on(generate(&mut s, &tok, &prompt, &greedy(30), &mut |_, _| {
        calls += 1;
        if calls == 3 {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }))
    .unwrap();
    assert_eq!(aborted.finish, FinishReason::Aborted);
    assert_eq!(
        aborted.tokens.len(),
        3,
        "the callback sees every token, so it stops at the third"
    );
    // The same session answers the next request as a fresh one would.
    let after = run(&mut s, &tok, &prompt, &greedy(5));
    let mut fresh = pollster::block_on(Session::new(model.clone(), Some(40))).unwrap();
    assert_eq!(
        after.tokens,
        run(&mut fresh, &tok, &prompt, &greedy(5)).tokens
    );
    // Running into the window ends the reply; a prompt that does not fit is refused.
    let full = run(&mut s, &tok, &prompt, &greedy(100));
    assert_eq!(full.finish, FinishReason::ContextFull);
    let too_long: Vec<u32> = (0..40).collect();
    let err = pollster::block_on(generate(
        &mut s,
        &tok,
        &too_long,
        &greedy(5),
        &mut |_, _| Flow::Continue,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("context window holds 40"), "{err}");
}

#[test]
fn decoding_reuses_bind_groups_and_stays_exact_across_cache_growth() {
    let (model, _) = load("tiny-q8_0.gguf");
    let n_vocab = model.config.n_vocab;
    let mut session = pollster::block_on(Session::new(model.clone(), Some(512))).unwrap();
    // 250 tokens: the KV cache (256 positions at first) grows during the decoding below.
    let mut tokens: Vec<u32> = (0..250).map(|i| (i * 7 % n_vocab) as u32).collect();
    let mut next = pollster::block_on(session.next_greedy(&tokens)).unwrap();
    let mut counts = Vec::new();
    for _ in 0..10 {
        tokens.push(next);
        next = pollster::block_on(session.next_greedy(&[next])).unwrap();
        counts.push(session.cached_bind_groups());
    }
    // Positions 250 and 251 decode through the same dispatches: nothing new to make.
    assert_eq!(counts[1], counts[0], "{counts:?}");
    // Growing the cache (at position 256, the 7th step) drops the groups holding the old one.
    assert!(counts[6] < counts[5], "{counts:?}");
    // And the reused groups computed the same thing as one fresh prefill of the whole text.
    tokens.push(next);
    let decoded = pollster::block_on(session.logits(&[next])).unwrap();
    let mut fresh = pollster::block_on(Session::new(model.clone(), Some(512))).unwrap();
    let all = pollster::block_on(fresh.logits(&tokens)).unwrap();
    let last = &all[all.len() - n_vocab..];
    let diff = decoded
        .iter()
        .zip(last)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "decoded vs prefilled logits differ by {diff}");
}

#[test]
fn pipelined_greedy_decoding_matches_step_by_step() {
    // Queued ahead as on a GPU (CPU adapters decode one step at a time by default).
    let (model, tok) = load_with("tiny-q4_k_m.gguf", |gpu| gpu.set_queue_ahead(true));
    let prompt: Vec<u32> = vec![72, 101, 108, 108, 111, 44, 32];
    let new_session = |ctx| pollster::block_on(Session::new(model.clone(), Some(ctx))).unwrap();
    // The reference: one step at a time, each token read back before the next is fed.
    let mut s = new_session(128);
    let mut reference = vec![pollster::block_on(s.next_greedy(&prompt)).unwrap()];
    while reference.len() < 20 {
        let next = pollster::block_on(s.next_greedy(&[*reference.last().unwrap()])).unwrap();
        reference.push(next);
    }
    let fed = |n: usize| [&prompt[..], &reference[..n]].concat();

    let mut s = new_session(128);
    assert_eq!(
        pollster::block_on(decode_greedy(&mut s, &prompt, 20)).unwrap(),
        reference
    );
    assert_eq!(
        s.history(),
        fed(19),
        "every token but the last fed, none left unread"
    );

    // generate, by each way it ends: the tokens and the history a step-by-step run leaves.
    let mut s = new_session(128);
    let out = run(&mut s, &tok, &prompt, &greedy(20));
    assert_eq!(
        (out.tokens.as_slice(), out.finish),
        (&reference[..], FinishReason::Length)
    );
    assert_eq!(s.history(), fed(19));

    let stop_at = (1..20)
        .find(|&i| !reference[..i].contains(&reference[i]))
        .unwrap();
    let mut s = new_session(128);
    let out = run(
        &mut s,
        &tok,
        &prompt,
        &GenerateOptions {
            stop_tokens: vec![reference[stop_at]],
            ..greedy(20)
        },
    );
    assert_eq!(
        (out.tokens.as_slice(), out.finish),
        (&reference[..stop_at], FinishReason::Stop)
    );
    assert_eq!(
        s.history(),
        fed(stop_at),
        "the stop token is not left in the history"
    );

    let mut s = new_session(prompt.len() + 5);
    let out = run(&mut s, &tok, &prompt, &greedy(20));
    assert_eq!(
        (out.tokens.as_slice(), out.finish),
        (&reference[..6], FinishReason::ContextFull)
    );
    assert_eq!(s.history(), fed(5));

    let mut s = new_session(128);
    let mut calls = 0;
    let out = pollster::block_on(generate(&mut s, &tok, &prompt, &greedy(20), &mut |_, _| {
        calls += 1;
        if calls == 3 {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }))
    .unwrap();
    assert_eq!(
        (out.tokens.as_slice(), out.finish),
        (&reference[..3], FinishReason::Aborted)
    );
    assert_eq!(s.history(), fed(2));

    // Only the last step submitted can be followed; a step never read back does not jam the
    // read-back buffers of the steps after it.
    let mut s = new_session(128);
    let mut decoder = pollster::block_on(GreedyDecoder::new(&model.gpu)).unwrap();
    let first = pollster::block_on(decoder.submit(&mut s, &prompt)).unwrap();
    let second = pollster::block_on(decoder.submit_after(&mut s, &first)).unwrap();
    let err = pollster::block_on(decoder.submit_after(&mut s, &first))
        .err()
        .expect("a stale step is refused");
    assert!(err.to_string().contains("last step submitted"), "{err}");
    assert_eq!(
        pollster::block_on(decoder.read(&mut s, first)).unwrap(),
        reference[0]
    );
    drop(second);
    s.truncate(prompt.len());
    assert_eq!(
        pollster::block_on(decoder.decode(&mut s, &reference[..1], 5)).unwrap(),
        reference[1..6]
    );
}
