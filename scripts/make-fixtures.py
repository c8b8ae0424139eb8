#!/usr/bin/env python3
"""Writes tiny random-weight GGUFs (Phi-3, Qwen 2, Qwen 3 and Gemma 3 architectures) and records
llama.cpp's answers for them.

Ground truth comes from llama.cpp (PyPI `llama-cpp-python`, which compiles it from source),
never from Hearth. Run once and commit `tests/fixtures/`; CI never rebuilds llama.cpp.

    pip install gguf numpy llama-cpp-python
    python3 scripts/make-fixtures.py          # everything
    python3 scripts/make-fixtures.py qwen     # only the Qwen 2 and Qwen 3 fixtures
    python3 scripts/make-fixtures.py gemma    # only the Gemma 3 fixtures

For every model it writes `<name>.gguf` and `<name>.json`:
  - `logits`: llama.cpp's teacher-forced logits for `tokens` at every position
    (raw little-endian f32 in `<name>.<case>.logits.f32`, row-major [n_tokens, n_vocab]),
  - `greedy`: llama.cpp's greedy continuation of a prompt, with the top-1/top-2 margin at each
    step (so tests can tell a real disagreement from a near-tie),
and `dequant/<type>.json` + `.f32`: gguf-py's dequantization of one tensor per type, the
reference for Hearth's CPU dequantizer.
"""

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

N_EMBD, N_HEAD, N_FF, N_LAYER = 256, 4, 512, 2
HEAD_DIM = N_EMBD // N_HEAD
N_PROMPT = 40  # teacher-forced positions per case
N_GREEDY = 24
RESIDUAL_SCALE = 0.5
GREEDY_PROMPT_TRIALS = 64


# ---------------------------------------------------------------- tokenizer (byte-level BPE)
def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


TRAIN_TEXT = """The quick brown fox jumps over the lazy dog. The dog sleeps in the sun and the fox
runs into the forest. In the morning there is a lot of light, and the birds sing their songs.
Hello world! This is a tiny tokenizer for testing: it learns the most common pairs of bytes.
What is the capital of France? The capital of France is Paris. I think therefore I am."""

CONTROL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_sep|>", "<|im_end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]


def train_merges(words, n_merges):
    """Greedy BPE training: `words` maps symbol tuples to counts; returns the merged pairs in
    order, most frequent first (ties by sorted order, so the result is deterministic)."""
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for word, count in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + count
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        new_words = {}
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + count
        words = new_words
    return merges


def build_vocab(n_merges=48):
    return build_vocab_from(TRAIN_TEXT, n_merges)


def build_vocab_from(text, n_merges, across_words=False, extra_tokens=()):
    """Byte-level BPE trained on `text`: on words (GPT-2 style) or, with `across_words`, on
    whole lines so that merges span spaces, digits and punctuation and every pre-tokenizer
    choice shows in the ids. `extra_tokens` are added without merges that reach them (as
    tiktoken-derived vocabularies have), which is what `ignore_merges` is about."""
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    words = {}
    units = text.split("\n") if across_words else [" " + w for w in text.replace("\n", " ").split(" ") if w]
    for w in units:
        if w:
            key = tuple(b2u[b] for b in w.encode())
            words[key] = words.get(key, 0) + 1
    pairs = train_merges(words, n_merges)
    merges = [f"{a} {b}" for a, b in pairs]
    tokens += [a + b for a, b in pairs]
    for t in extra_tokens:
        t = "".join(b2u[b] for b in t.encode())
        if t not in tokens:
            tokens.append(t)
    types = [1] * len(tokens) + [3] * len(CONTROL_TOKENS)
    tokens += CONTROL_TOKENS
    # Pad the vocabulary to a multiple of 32 like real models do (unused tokens).
    while len(tokens) % 32:
        tokens.append(f"<|unused{len(tokens)}|>")
        types.append(5)
    return tokens, types, merges


PHI4_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}"
)


# ---------------------------------------------------------------- models
def add_tokenizer(w, tokens, types, merges, pre, template):
    """The byte-level BPE vocabulary, its pre-tokenizer, control tokens and chat template."""
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_add_bos_token(False)
    w.add_chat_template(template)


class RandomWeights:
    """Random tensors for a fixture written to `w`: matrices scaled by 1/sqrt(cols) (times
    `scale`), norm gains near 1, stored as `dtype` (vectors always F32)."""

    def __init__(self, w, rng, dtype):
        self.w, self.rng, self.dtype = w, rng, dtype

    def mat(self, rows, cols, scale=1.0):
        return (self.rng.standard_normal((rows, cols)) * scale / math.sqrt(cols)).astype(np.float32)

    def gain(self, n):
        return (1.0 + 0.1 * self.rng.standard_normal(n)).astype(np.float32)

    def add(self, name, arr):
        if arr.ndim == 1 or self.dtype == Q.F32:
            self.w.add_tensor(name, arr.astype(np.float32))
        elif self.dtype == Q.F16:
            self.w.add_tensor(name, arr.astype(np.float16))
        else:
            self.w.add_tensor(name, gguf.quants.quantize(arr, self.dtype), raw_dtype=self.dtype)


def write_model(path, *, dtype, n_head_kv, n_rot, tied, seed, longrope=False, context_length=4096):
    rng = np.random.default_rng(seed)
    tokens, types, merges = build_vocab()
    n_vocab = len(tokens)
    kv_dim = n_head_kv * HEAD_DIM

    w = gguf.GGUFWriter(str(path), "phi3")
    w.add_name(path.stem)
    w.add_context_length(context_length)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(n_rot)
    if longrope:
        w.add_rope_scaling_orig_ctx_len(256)
        w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(context_length / 256) / math.log(256)))
    add_tokenizer(w, tokens, types, merges, "default", PHI4_TEMPLATE)

    weights = RandomWeights(w, rng, dtype)
    mat, add = weights.mat, weights.add

    def norm():
        return weights.gain(N_EMBD)

    add("token_embd.weight", rng.standard_normal((n_vocab, N_EMBD)).astype(np.float32))
    for i in range(N_LAYER):
        add(f"blk.{i}.attn_norm.weight", norm())
        add(f"blk.{i}.attn_qkv.weight", mat(N_EMBD + 2 * kv_dim, N_EMBD, 1.5))
        # Residual branches at half scale: random networks at full scale are chaotic and
        # amplify llama.cpp's 8-bit activation rounding until greedy choices become coin flips.
        add(f"blk.{i}.attn_output.weight", mat(N_EMBD, N_EMBD, RESIDUAL_SCALE))
        add(f"blk.{i}.ffn_norm.weight", norm())
        add(f"blk.{i}.ffn_up.weight", mat(2 * N_FF, N_EMBD))
        add(f"blk.{i}.ffn_down.weight", mat(N_EMBD, N_FF, RESIDUAL_SCALE))
    add("output_norm.weight", norm())
    if not tied:
        add("output.weight", mat(n_vocab, N_EMBD, 4.0))
    if longrope:
        half = n_rot // 2
        short = np.linspace(1.0, 1.6, half).astype(np.float32)
        long = np.exp(np.linspace(0.0, math.log(24.0), half)).astype(np.float32)
        add("rope_factors_long.weight", long)
        add("rope_factors_short.weight", short)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return n_vocab


CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def write_qwen_model(path, *, arch, dtype, n_head_kv, head_dim, tied, seed):
    """A tiny random Qwen 2 (biases on q, k, v) or Qwen 3 (RMSNorm of each query and key head
    before RoPE) model, with separate q/k/v and gate/up tensors as llama.cpp's converter
    writes them. `head_dim` may differ from N_EMBD / N_HEAD (Qwen 3 does), so the query
    width differs from the embedding width."""
    rng = np.random.default_rng(seed)
    tokens, types, merges = build_vocab()
    n_vocab = len(tokens)
    q_dim, kv_dim = N_HEAD * head_dim, n_head_kv * head_dim

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(path.stem)
    w.add_context_length(4096)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(n_head_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1000000.0)
    add_tokenizer(w, tokens, types, merges, "qwen2", CHATML_TEMPLATE)

    weights = RandomWeights(w, rng, dtype)
    mat, gain, add = weights.mat, weights.gain, weights.add

    add("token_embd.weight", rng.standard_normal((n_vocab, N_EMBD)).astype(np.float32))
    for i in range(N_LAYER):
        add(f"blk.{i}.attn_norm.weight", gain(N_EMBD))
        for part, rows in (("q", q_dim), ("k", kv_dim), ("v", kv_dim)):
            add(f"blk.{i}.attn_{part}.weight", mat(rows, N_EMBD, 1.5))
            if arch == "qwen2":
                add(f"blk.{i}.attn_{part}.bias", (0.5 * rng.standard_normal(rows)).astype(np.float32))
        if arch == "qwen3":
            add(f"blk.{i}.attn_q_norm.weight", gain(head_dim))
            add(f"blk.{i}.attn_k_norm.weight", gain(head_dim))
        add(f"blk.{i}.attn_output.weight", mat(N_EMBD, q_dim, RESIDUAL_SCALE))
        add(f"blk.{i}.ffn_norm.weight", gain(N_EMBD))
        add(f"blk.{i}.ffn_gate.weight", mat(N_FF, N_EMBD))
        add(f"blk.{i}.ffn_up.weight", mat(N_FF, N_EMBD))
        add(f"blk.{i}.ffn_down.weight", mat(N_EMBD, N_FF, RESIDUAL_SCALE))
    add("output_norm.weight", gain(N_EMBD))
    if not tied:
        add("output.weight", mat(n_vocab, N_EMBD, 4.0))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_qwen_fixtures():
    """Qwen 2 and Qwen 3 fixtures: F16 as written, Q4_K_M through llama.cpp's quantizer."""
    short_cases = {"prompt": (512, N_PROMPT, 1)}
    for arch, kw in {
        "qwen2": dict(n_head_kv=2, head_dim=HEAD_DIM, seed=40),
        "qwen3": dict(n_head_kv=2, head_dim=96, seed=41),
    }.items():
        write_qwen_model(OUT / f"tiny-{arch}-f16.gguf", arch=arch, dtype=Q.F16, tied=False, **kw)
        record(f"tiny-{arch}-f16", short_cases, 512)
        base = OUT / f"{arch}-source.f16.gguf"
        write_qwen_model(base, arch=arch, dtype=Q.F16, tied=True, **kw)
        llama_quantize(base, OUT / f"tiny-{arch}-q4_k_m.gguf", 15)
        record(f"tiny-{arch}-q4_k_m", short_cases, 512)
        base.unlink()


GEMMA_LAYERS = 6  # local layers 0-4, global layer 5 (five local layers in six)
GEMMA_WINDOW = 16
GEMMA_FF = 256


def write_gemma_model(path, *, dtype, rope_scaling, seed):
    """A tiny random Gemma 3: embeddings scaled by sqrt(n_embd), RMSNorm of each query and key
    head, norms after attention and the feed-forward as well as before, a GELU gate, a
    sliding window of GEMMA_WINDOW positions on the local layers (RoPE base 10000 there, the
    file's base and linear scaling on the global one), one KV head (as in Gemma 3 270M), tied
    output. The norm gains are stored as the converter
    writes them, with Gemma's +1 already added."""
    rng = np.random.default_rng(seed)
    tokens, types, merges = build_vocab()
    n_vocab = len(tokens)
    head_dim, n_head_kv = HEAD_DIM, 1
    q_dim, kv_dim = N_HEAD * head_dim, n_head_kv * head_dim

    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_name(path.stem)
    w.add_context_length(4096)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(GEMMA_LAYERS)
    w.add_feed_forward_length(GEMMA_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(n_head_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1000000.0)
    w.add_sliding_window(GEMMA_WINDOW)
    if rope_scaling:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(8.0)
    add_tokenizer(w, tokens, types, merges, "default", CHATML_TEMPLATE)

    weights = RandomWeights(w, rng, dtype)
    mat, gain, add = weights.mat, weights.gain, weights.add

    # Small embeddings, as Gemma's are (sqrt(n_embd) = 16 brings them to about 1.6), and
    # strong post-norms, so that every layer (local or global) moves the logits.
    add("token_embd.weight", (0.1 * rng.standard_normal((n_vocab, N_EMBD))).astype(np.float32))
    for i in range(GEMMA_LAYERS):
        add(f"blk.{i}.attn_norm.weight", gain(N_EMBD))
        for part, rows in (("q", q_dim), ("k", kv_dim), ("v", kv_dim)):
            add(f"blk.{i}.attn_{part}.weight", mat(rows, N_EMBD, 1.5))
        add(f"blk.{i}.attn_q_norm.weight", gain(head_dim))
        add(f"blk.{i}.attn_k_norm.weight", gain(head_dim))
        add(f"blk.{i}.attn_output.weight", mat(N_EMBD, q_dim))
        add(f"blk.{i}.post_attention_norm.weight", (1.5 * gain(N_EMBD)).astype(np.float32))
        add(f"blk.{i}.ffn_norm.weight", gain(N_EMBD))
        add(f"blk.{i}.ffn_gate.weight", mat(GEMMA_FF, N_EMBD, 2.0))
        add(f"blk.{i}.ffn_up.weight", mat(GEMMA_FF, N_EMBD))
        add(f"blk.{i}.ffn_down.weight", mat(N_EMBD, GEMMA_FF))
        add(f"blk.{i}.post_ffw_norm.weight", (1.5 * gain(N_EMBD)).astype(np.float32))
    add("output_norm.weight", gain(N_EMBD))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_gemma_fixtures():
    """Gemma 3 fixtures: F16 with the larger models' linear RoPE scaling, as written; Q4_K_M
    without it (as Gemma 3 270M and 1B), through llama.cpp's quantizer. The prompts run past
    the sliding window."""
    short_cases = {"prompt": (512, N_PROMPT, 1)}
    write_gemma_model(OUT / "tiny-gemma3-f16.gguf", dtype=Q.F16, rope_scaling=True, seed=50)
    record("tiny-gemma3-f16", short_cases, 512)
    base = OUT / "gemma3-source.f16.gguf"
    write_gemma_model(base, dtype=Q.F16, rope_scaling=False, seed=51)
    llama_quantize(base, OUT / "tiny-gemma3-q4_k_m.gguf", 15)
    record("tiny-gemma3-q4_k_m", short_cases, 512)
    base.unlink()


# ---------------------------------------------------------------- llama.cpp references
def record(name, cases, greedy_ctx):
    from llama_cpp import Llama

    path = OUT / f"{name}.gguf"
    meta = {"model": path.name, "logits": [], "greedy": None}
    for case, (n_ctx, n_tokens, seed) in cases.items():
        llm = Llama(model_path=str(path), n_ctx=n_ctx, n_batch=512, n_ubatch=512, logits_all=True, verbose=False, n_threads=2, seed=0)
        assert llm.n_ctx() == n_ctx, f"llama.cpp padded n_ctx {n_ctx} to {llm.n_ctx()}"
        rng = np.random.default_rng(seed)
        toks = [int(t) for t in rng.integers(0, llm.n_vocab(), n_tokens)]
        llm.reset()
        llm.eval(toks)
        logits = np.asarray(llm.scores[:n_tokens], dtype=np.float32)
        out = f"{name}.{case}.logits.f32"
        logits.tofile(OUT / out)
        meta["logits"].append({"case": case, "ctx": n_ctx, "tokens": toks, "file": out, "n_vocab": llm.n_vocab()})
        del llm

    llm = Llama(model_path=str(path), n_ctx=greedy_ctx, n_batch=512, logits_all=True, verbose=False, n_threads=2, seed=0)

    def greedy(prompt):
        llm.reset()
        llm.eval(prompt)
        gen, margins = [], []
        for _ in range(N_GREEDY):
            scores = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            top2 = np.sort(scores)[-2:]
            tok = int(np.argmax(scores))
            gen.append(tok)
            margins.append(float(top2[1] - top2[0]))
            llm.eval([tok])
        return gen, margins

    # Of several random prompts keep the one whose continuation is decided most clearly
    # (largest smallest margin): a near-tie is decided by rounding, not by the model.
    rng = np.random.default_rng(99)
    best = None
    for _ in range(GREEDY_PROMPT_TRIALS):
        prompt = [int(t) for t in rng.integers(0, llm.n_vocab(), 12)]
        gen, margins = greedy(prompt)
        if best is None or min(margins) > min(best[2]):
            best = (prompt, gen, margins)
    prompt, gen, margins = best
    meta["greedy"] = {"ctx": greedy_ctx, "prompt": prompt, "tokens": gen, "margins": margins}
    (OUT / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{name}: recorded {len(meta['logits'])} logit cases and {len(gen)} greedy tokens", file=sys.stderr)


def llama_quantize(src, dst, ftype):
    import llama_cpp

    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), p)
    assert rc == 0, f"llama_model_quantize failed with {rc}"


def record_dequant(ty_name, qtype, seed):
    """gguf-py's dequantization of a random tensor quantized by gguf-py or llama.cpp."""
    rng = np.random.default_rng(seed)
    arr = rng.standard_normal((4, 512)).astype(np.float32)
    q = gguf.quants.quantize(arr, qtype) if qtype not in (Q.F32,) else arr
    deq = gguf.quants.dequantize(q, qtype).astype(np.float32)
    d = OUT / "dequant"
    d.mkdir(exist_ok=True)
    np.asarray(q).tobytes()
    (d / f"{ty_name}.raw").write_bytes(np.asarray(q).tobytes())
    deq.tofile(d / f"{ty_name}.f32")


def dequant_from_model(ty_name, model, tensor_name):
    """K-quants: gguf-py cannot quantize them, so take a tensor llama.cpp quantized."""
    r = gguf.GGUFReader(str(OUT / model))
    t = next(t for t in r.tensors if t.name == tensor_name)
    deq = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    d = OUT / "dequant"
    d.mkdir(exist_ok=True)
    (d / f"{ty_name}.raw").write_bytes(np.asarray(t.data).tobytes())
    deq.tofile(d / f"{ty_name}.f32")
    return t.tensor_type.name


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    short_cases = {"prompt": (512, N_PROMPT, 1)}

    # Float and legacy-quant models written directly by gguf-py.
    models = {
        "tiny-f32-mha": dict(dtype=Q.F32, n_head_kv=4, n_rot=HEAD_DIM, tied=False, seed=10),
        "tiny-f16-gqa-tied": dict(dtype=Q.F16, n_head_kv=2, n_rot=48, tied=True, seed=11),
        "tiny-bf16-gqa": dict(dtype=Q.BF16, n_head_kv=2, n_rot=HEAD_DIM, tied=False, seed=12),
        "tiny-q8_0": dict(dtype=Q.Q8_0, n_head_kv=2, n_rot=48, tied=False, seed=13),
        "tiny-q4_0": dict(dtype=Q.Q4_0, n_head_kv=2, n_rot=48, tied=False, seed=14),
        "tiny-q4_1": dict(dtype=Q.Q4_1, n_head_kv=1, n_rot=HEAD_DIM, tied=True, seed=15),
        "tiny-q5_0": dict(dtype=Q.Q5_0, n_head_kv=2, n_rot=48, tied=False, seed=16),
        "tiny-q5_1": dict(dtype=Q.Q5_1, n_head_kv=4, n_rot=48, tied=False, seed=17),
    }
    for name, kw in models.items():
        write_model(OUT / f"{name}.gguf", **kw)
        record(name, short_cases, 512)

    # K-quants through llama.cpp's own quantizer, from one F16 source.
    base = OUT / "kquant-source.f16.gguf"
    write_model(base, dtype=Q.F16, n_head_kv=2, n_rot=48, tied=False, seed=20)
    for name, ftype in {"tiny-q4_k_m": 15, "tiny-q5_k_m": 17, "tiny-q6_k": 18}.items():
        llama_quantize(base, OUT / f"{name}.gguf", ftype)
        record(name, short_cases, 512)
    base.unlink()

    # LongRoPE: short factors inside the original 256-token window, long factors past it.
    write_model(OUT / "tiny-longrope.gguf", dtype=Q.F16, n_head_kv=2, n_rot=48, tied=True, seed=30, longrope=True, context_length=1024)
    record("tiny-longrope", {"short": (256, 200, 2), "long": (512, 300, 3)}, 512)

    for ty_name, qtype, seed in [("F16", Q.F16, 1), ("BF16", Q.BF16, 2), ("Q8_0", Q.Q8_0, 3), ("Q4_0", Q.Q4_0, 4), ("Q4_1", Q.Q4_1, 5), ("Q5_0", Q.Q5_0, 6), ("Q5_1", Q.Q5_1, 7)]:
        record_dequant(ty_name, qtype, seed)
    for model in ["tiny-q4_k_m.gguf", "tiny-q5_k_m.gguf", "tiny-q6_k.gguf"]:
        r = gguf.GGUFReader(str(OUT / model))
        for t in r.tensors:
            if t.tensor_type.name in ("Q4_K", "Q5_K", "Q6_K") and not (OUT / "dequant" / f"{t.tensor_type.name}.raw").exists():
                dequant_from_model(t.tensor_type.name, model, t.name)
    for model in ["tiny-q4_k_m.gguf", "tiny-q5_k_m.gguf", "tiny-q6_k.gguf"]:
        r = gguf.GGUFReader(str(OUT / model))
        print(model, sorted({t.tensor_type.name for t in r.tensors}), file=sys.stderr)


if __name__ == "__main__":
    # `qwen`, `gemma`: only those fixtures (added later; the others stay as committed).
    if sys.argv[1:] == ["qwen"]:
        make_qwen_fixtures()
    elif sys.argv[1:] == ["gemma"]:
        make_gemma_fixtures()
    else:
        main()
        make_qwen_fixtures()
        make_gemma_fixtures()
