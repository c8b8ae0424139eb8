//! Text generation on a session: reuse the cached prefix, prefill the rest, then sample token
//! by token, streaming text, until an end-of-turn token, a stop string, the token limit, the
//! context limit, or the caller says stop.

use crate::decode::GreedyDecoder;
use crate::error::EngineError;
use crate::sampling::{SamplingParams, SplitMix64};
use crate::session::{Output, Session, Want};
use hearth_text::{Constraint, StreamDecoder, TokenType, Tokenizer};
use std::time::Duration;
use web_time::Instant;

#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation ends when the text contains one of these; the text is cut before it.
    pub stop: Vec<String>,
    /// Generation ends on these tokens (typically the model's end-of-turn tokens).
    pub stop_tokens: Vec<u32>,
    /// The format the reply must have (structured output), enforced on every token; the
    /// reply ends when it is complete (and the model ends its turn, where it may).
    pub constraint: Option<Constraint>,
    /// What opens a tool call (`ToolFormat::open_text`: text, or a control token's text):
    /// nothing from there on streams as text; `Generated::content` ends there.
    pub calls_open: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-turn token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The context window is full.
    ContextFull,
    /// The caller asked to stop.
    Aborted,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ContextFull => "context_full",
            FinishReason::Aborted => "aborted",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Generated {
    /// Generated token ids (without the stop token).
    pub tokens: Vec<u32>,
    pub text: String,
    /// Where in `text` tool calls begin (`GenerateOptions::calls_open`), if they do.
    pub calls_at: Option<usize>,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values were already cached from an earlier turn.
    pub reused_tokens: usize,
    /// Time to the first generated token (prefill of the uncached prompt tokens).
    pub prefill: Duration,
    /// Time spent producing the remaining tokens.
    pub decode: Duration,
}

impl Generated {
    pub fn decode_tokens_per_s(&self) -> f64 {
        self.tokens.len().saturating_sub(1) as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

/// What the streaming callback returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Length of the longest suffix of `text` that is a proper prefix of some stop string: text
/// that must be held back because it may still turn into a stop string.
fn held_back(text: &str, stops: &[String]) -> usize {
    let mut hold = 0;
    for stop in stops {
        for (i, _) in stop.char_indices().skip(1) {
            if text.ends_with(&stop[..i]) {
                hold = hold.max(i);
            }
        }
    }
    hold
}

/// Generates a continuation of `prompt` (the whole conversation so far, as tokens).
/// Cached tokens the prompt starts with are reused; `on_text` receives text as it is
/// produced (never half a character, never part of a stop string) and may stop early. It is
/// called once per generated token (`Some(id)`, text possibly empty) and once more with
/// `None` if held-back text remains at the end.
pub async fn generate(
    session: &mut Session,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    options: &GenerateOptions,
    on_text: &mut dyn FnMut(&str, Option<u32>) -> Flow,
) -> Result<Generated, EngineError> {
    if prompt.is_empty() {
        return Err(EngineError::Unsupported("the prompt is empty".into()));
    }
    if prompt.len() >= session.context_window() {
        return Err(EngineError::ContextFull {
            needed: prompt.len() + 1,
            ctx: session.context_window(),
        });
    }
    // Reuse the cached prefix, but always feed at least one token to get fresh logits.
    let common = session
        .history()
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count()
        .min(prompt.len() - 1);
    session.truncate(common);

    let sampling = &options.sampling;
    let mut rng = SplitMix64(sampling.seed);
    let mut stream = StreamDecoder::new();
    let mut text = String::new();
    let mut emitted = 0usize;
    let mut calls_at = None;
    // Text held back from the stream while it may still become a stop string or call marker.
    let held: Vec<String> = options
        .stop
        .iter()
        .chain(&options.calls_open)
        .cloned()
        .collect();
    let mut tokens = Vec::new();
    let start = Instant::now();
    let mut first_token_at = start;
    let mut feed: Vec<u32> = prompt[common..].to_vec();
    let mut finish = FinishReason::Length;
    let mut constraint = options.constraint.clone();
    // Greedy decoding on a GPU (`Tuning::queue_ahead`) keeps the next step queued while a
    // token is read back (decode.rs); sampling, and a constraint's masks, need each token on
    // the host first.
    let queue_ahead = !sampling.needs_candidates()
        && constraint.is_none()
        && session.model().kernels.choice().tuning().queue_ahead;
    let gpu = session.model().gpu.clone();
    let mut decoder = GreedyDecoder::new(&gpu).await?;
    let mut queued = None;
    let fits = session.history().len() + feed.len() <= session.context_window();
    if queue_ahead && options.max_tokens > 0 && fits {
        queued = Some(decoder.submit(session, &feed).await?);
    }

    while tokens.len() < options.max_tokens {
        let next = if queue_ahead {
            let Some(step) = queued.take() else {
                finish = FinishReason::ContextFull;
                break;
            };
            if tokens.len() + 1 < options.max_tokens
                && session.history().len() < session.context_window()
            {
                queued = Some(decoder.submit_after(session, &step).await?);
            }
            decoder.read(session, step).await?
        } else {
            if session.history().len() + feed.len() > session.context_window() {
                finish = FinishReason::ContextFull;
                break;
            }
            match &mut constraint {
                Some(constraint) => {
                    let Some(next) =
                        constrained_next(session, &feed, constraint, options, &mut rng).await?
                    else {
                        finish = FinishReason::Stop;
                        break;
                    };
                    next
                }
                None if sampling.needs_candidates() => {
                    let candidates = session.next_candidates(&feed, sampling).await?;
                    sampling
                        .pick(&candidates, &mut rng)
                        .ok_or_else(|| EngineError::Readback("no candidates came back".into()))?
                }
                None => session.next_greedy(&feed).await?,
            }
        };
        if tokens.is_empty() {
            if constraint.is_some() {
                // A token the format forces is known before the prompt has run through the
                // layers: the prefill ends when the GPU is done with it.
                gpu.work_done().await?;
            }
            first_token_at = Instant::now();
        }
        if options.stop_tokens.contains(&next) {
            finish = FinishReason::Stop;
            break;
        }
        if let Some(constraint) = &mut constraint {
            constraint.commit(next)?;
        }
        tokens.push(next);
        feed = vec![next];
        text.push_str(&stream.push(tokenizer, next));

        if let Some(at) = options
            .stop
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            text.truncate(at);
            finish = FinishReason::Stop;
            break;
        }
        if let (None, Some(open)) = (calls_at, &options.calls_open) {
            if tokenizer.token_type(next) == Some(TokenType::Control) {
                calls_at = (tokenizer.token_text(next) == *open).then_some(text.len());
            } else {
                calls_at = text.find(open.as_str());
            }
        }
        // Called for every token, with empty text while a character or a possible stop
        // string (or call marker) is incomplete, so callers see each token and can stop at
        // any of them; nothing once calls begin.
        let ready = match calls_at {
            Some(at) => at.max(emitted),
            None => (text.len() - held_back(&text, &held)).max(emitted),
        };
        let flow = on_text(&text[emitted..ready], Some(next));
        emitted = ready;
        if flow == Flow::Stop {
            finish = FinishReason::Aborted;
            break;
        }
    }
    // A step queued for a token that ends the generation: its work is dropped, and the
    // token leaves the history again, as if it had never been fed.
    if let Some(step) = queued {
        decoder.read(session, step).await?;
        session.truncate(session.history().len() - 1);
    }
    if constraint.is_some() {
        // Forced tokens run their layers without a read-back: the reply is done when they are.
        gpu.work_done().await?;
    }
    if finish != FinishReason::Stop {
        text.push_str(&stream.finish());
    }
    let content_end = calls_at.unwrap_or(text.len());
    if content_end > emitted {
        on_text(&text[emitted..content_end], None);
    }
    // The last sampled token has not been fed yet; it will be if the conversation goes on
    // (the next prompt repeats it and prefix reuse picks it up).
    Ok(Generated {
        tokens,
        text,
        calls_at,
        finish,
        prompt_tokens: prompt.len(),
        reused_tokens: common,
        prefill: first_token_at - start,
        decode: first_token_at.elapsed(),
    })
}

/// The next token of a constrained reply after `feed`, or `None` where the reply is complete:
/// the layers run on the GPU while the constraint computes which tokens may come next; a
/// token that is the only one allowed needs no head at all.
async fn constrained_next(
    session: &mut Session,
    feed: &[u32],
    constraint: &mut Constraint,
    options: &GenerateOptions,
    rng: &mut SplitMix64,
) -> Result<Option<u32>, EngineError> {
    if constraint.is_complete() {
        return Ok(None);
    }
    session.feed(feed).await?;
    let mask = constraint.allowed(&options.stop_tokens)?;
    if mask.is_empty() {
        return Ok(None);
    }
    if let Some(only) = mask.only {
        return Ok(Some(only));
    }
    let sampling = &options.sampling;
    if !sampling.needs_candidates() {
        return match session.head(Want::Argmax, Some(&mask)).await? {
            Output::Token(t) => Ok(Some(t)),
            _ => unreachable!("Argmax returns a token"),
        };
    }
    let Output::Candidates(mut candidates) = session
        .head(Want::Candidates(sampling), Some(&mask))
        .await?
    else {
        unreachable!("Candidates returns candidates")
    };
    // Fewer tokens allowed than candidates: the rest come back with the mask's logit.
    candidates.retain(|&(token, _)| mask.allows(token));
    let next = sampling.pick(&candidates, rng);
    next.map(Some)
        .ok_or_else(|| EngineError::Readback("no candidates came back".into()))
}

#[cfg(test)]
mod tests {
    use super::held_back;

    #[test]
    fn holds_back_what_may_become_a_stop_string() {
        let stops = vec!["</answer>".to_string(), "\n\n".to_string()];
        assert_eq!(held_back("the end </ans", &stops), 5);
        assert_eq!(held_back("line\n", &stops), 1);
        assert_eq!(held_back("nothing here", &stops), 0);
    }
}
