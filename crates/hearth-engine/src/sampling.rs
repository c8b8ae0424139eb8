//! Sampling: penalties and logit bias run on the GPU over the whole vocabulary, the GPU then
//! keeps the 128 best candidates, and the rest happens here on those few: top-k, top-p,
//! min-p, temperature and a seeded draw, in llama.cpp's default order.

use crate::kernels::TOP_K;
use std::collections::HashMap;

/// How the next token is chosen. `temperature == 0` is greedy.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    /// Keep the k most likely tokens (0: no limit beyond the GPU's 128 candidates).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1: off).
    pub top_p: f32,
    /// Drop tokens less likely than min_p × the most likely one (0: off).
    pub min_p: f32,
    /// Divides positive (multiplies negative) logits of recently seen tokens (1: off).
    pub repeat_penalty: f32,
    /// Subtracted once from the logit of every recently seen token (0: off).
    pub presence_penalty: f32,
    /// Subtracted per occurrence from the logit of recently seen tokens (0: off).
    pub frequency_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub penalty_last_n: usize,
    /// Added to the logits of specific tokens before anything else.
    pub logit_bias: Vec<(u32, f32)>,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            logit_bias: Vec::new(),
            seed: 0,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 1,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || self.top_k == 1
    }

    fn has_penalties(&self) -> bool {
        self.repeat_penalty != 1.0 || self.presence_penalty != 0.0 || self.frequency_penalty != 0.0
    }

    /// Whether the next token depends on more than the plain argmax, so the GPU must return
    /// penalized candidates rather than one id.
    pub fn needs_candidates(&self) -> bool {
        !self.is_greedy() || self.has_penalties() || !self.logit_bias.is_empty()
    }

    /// The per-token records the penalize kernel applies: (token, count in window, bias, 0).
    pub fn penalty_entries(&self, history: &[u32], n_vocab: usize) -> Vec<[u32; 4]> {
        let mut entries: HashMap<u32, (u32, f32)> = HashMap::new();
        if self.has_penalties() && self.penalty_last_n > 0 {
            for &t in &history[history.len().saturating_sub(self.penalty_last_n)..] {
                entries.entry(t).or_default().0 += 1;
            }
        }
        for &(t, bias) in &self.logit_bias {
            if (t as usize) < n_vocab {
                entries.entry(t).or_default().1 += bias;
            }
        }
        let mut out: Vec<[u32; 4]> = entries
            .into_iter()
            .map(|(t, (count, bias))| [t, count, bias.to_bits(), 0])
            .collect();
        out.sort_unstable_by_key(|e| e[0]);
        out
    }

    /// Picks a token from candidates sorted by descending logit.
    pub fn pick(&self, candidates: &[(u32, f32)], rng: &mut SplitMix64) -> Option<u32> {
        let first = candidates.first()?.0;
        if self.is_greedy() {
            return Some(first);
        }
        let k = if self.top_k == 0 {
            candidates.len()
        } else {
            self.top_k.min(candidates.len())
        };
        let mut kept = &candidates[..k];
        let max = kept[0].1;
        let probs: Vec<f64> = {
            let e: Vec<f64> = kept
                .iter()
                .map(|&(_, l)| ((l - max) as f64).exp())
                .collect();
            let sum: f64 = e.iter().sum();
            e.iter().map(|v| v / sum).collect()
        };
        if self.top_p < 1.0 {
            let mut cumulative = 0.0;
            let mut n = kept.len();
            for (i, p) in probs.iter().enumerate() {
                cumulative += p;
                if cumulative >= self.top_p as f64 {
                    n = i + 1;
                    break;
                }
            }
            kept = &kept[..n];
        }
        if self.min_p > 0.0 {
            let n = probs
                .iter()
                .take(kept.len())
                .take_while(|&&p| p >= self.min_p as f64 * probs[0])
                .count()
                .max(1);
            kept = &kept[..n];
        }
        let weights: Vec<f64> = kept
            .iter()
            .map(|&(_, l)| (((l - max) / self.temperature) as f64).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut r = rng.next_f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if r < *w {
                return Some(kept[i].0);
            }
            r -= w;
        }
        Some(kept[kept.len() - 1].0)
    }
}

/// Candidates the GPU returns per sampled token.
pub const CANDIDATES: usize = TOP_K as usize;

/// SplitMix64: small, fast, and the same sequence for the same seed on every platform.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands() -> Vec<(u32, f32)> {
        vec![(5, 3.0), (2, 2.5), (9, 1.0), (1, 0.0), (7, -2.0)]
    }

    #[test]
    fn greedy_and_top_k_one_take_the_best() {
        let mut rng = SplitMix64(1);
        assert_eq!(SamplingParams::greedy().pick(&cands(), &mut rng), Some(5));
        let p = SamplingParams {
            top_k: 1,
            temperature: 5.0,
            ..Default::default()
        };
        for _ in 0..100 {
            assert_eq!(p.pick(&cands(), &mut rng), Some(5));
        }
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        // probabilities at temperature 1: 0.56, 0.34, 0.076, 0.028, 0.004
        let mut rng = SplitMix64(2);
        let top_p = SamplingParams {
            top_k: 0,
            top_p: 0.8,
            min_p: 0.0,
            temperature: 1.0,
            ..Default::default()
        };
        let min_p = SamplingParams {
            top_k: 0,
            top_p: 1.0,
            min_p: 0.1,
            temperature: 1.0,
            ..Default::default()
        };
        for _ in 0..500 {
            assert!(matches!(top_p.pick(&cands(), &mut rng), Some(5 | 2)));
            assert!(matches!(min_p.pick(&cands(), &mut rng), Some(5 | 2 | 9)));
        }
    }

    #[test]
    fn draws_follow_the_tempered_distribution() {
        let p = SamplingParams {
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            temperature: 2.0,
            ..Default::default()
        };
        let mut rng = SplitMix64(3);
        let mut counts = HashMap::new();
        let n = 20000;
        for _ in 0..n {
            *counts
                .entry(p.pick(&cands(), &mut rng).unwrap())
                .or_insert(0) += 1;
        }
        let z: f64 = cands().iter().map(|&(_, l)| (l as f64 / 2.0).exp()).sum();
        for (t, l) in cands() {
            let expected = (l as f64 / 2.0).exp() / z;
            let got = counts.get(&t).copied().unwrap_or(0) as f64 / n as f64;
            assert!(
                (got - expected).abs() < 0.015,
                "token {t}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn penalty_entries_count_the_window_and_merge_bias() {
        let p = SamplingParams {
            repeat_penalty: 1.3,
            penalty_last_n: 4,
            logit_bias: vec![(3, -1.5), (99, 2.0)],
            ..Default::default()
        };
        let e = p.penalty_entries(&[9, 9, 1, 3, 3, 3], 50);
        assert_eq!(
            e,
            vec![[1, 1, 0f32.to_bits(), 0], [3, 3, (-1.5f32).to_bits(), 0]]
        );
    }
}
