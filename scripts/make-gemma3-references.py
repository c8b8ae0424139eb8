#!/usr/bin/env python3
"""References for Gemma 3 270M (Q4_K_M), the second real model the tests run.

Commits reference figures, never the model (Gemma terms): run `scripts/fetch-gemma3.sh` first.
Records, with PyPI `llama-cpp-python` and `gguf`:
  - llama.cpp's token ids of hard strings (code, digits, Unicode, runs of spaces and newlines,
    Gemma's turn markers), special tokens on and off;
  - a chat prompt in Gemma's turn format (the file has no template of its own) and its tokens;
  - teacher-forced logits for that prompt and for a text longer than the 512-position sliding
    window, from two references: an exact float64 forward pass written here in numpy over
    gguf-py's dequantized weights, and llama.cpp. A vocabulary of 262,144 makes whole logit
    rows too large to commit, so each position keeps the exact pass's 16 best tokens, their
    exact logits and llama.cpp's, and both references' top-1 margins
    (`<case>.top.bin`: per position u32 ids[16], f32 exact[16], f32 llama[16], f32
    exact_margin, u32 llama_top1, f32 llama_margin; little-endian);
  - llama.cpp's greedy answer to the chat prompt, with its margins.
"""

import json
from pathlib import Path

import gguf
import numpy as np
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
OUT = ROOT / "tests" / "fixtures" / "gemma3"
TOP = 16

HARD = [
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "Order #12345 shipped on 2024-11-23 for $1,299.99 (3 items).",
    "Grüße aus Köln! Привет, мир. こんにちは世界 🌍👋🏽 naïve café",
    "<start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\nHi there.<end_of_turn>",
    "   indented\ttabs\n\n\nand blank lines   \n\n\n\n  end",
    "Ünïcödé\u200bzero\u00a0width and \U0001F600 emoji; <unused0> and <bos> as text",
]
QUESTION = "What is the capital of France? Answer in one sentence."
# Gemma's turn format, as Gemma 3's own template writes it (with the BOS llama.cpp adds).
CHAT_PROMPT = f"<start_of_turn>user\n{QUESTION}<end_of_turn>\n<start_of_turn>model\n"


def field(reader, key):
    f = reader.fields[key]
    return f.parts[f.data[0]][0]


def exact_logits(reader, tokens):
    """Gemma 3's forward pass in float64, following Hugging Face's modeling_gemma3 (norm gains
    as the GGUF stores them, with Gemma's +1 already added)."""
    T = {t.name: t for t in reader.tensors}
    W = lambda name: gguf.quants.dequantize(T[name].data, T[name].tensor_type).astype(np.float64)
    d = int(field(reader, "gemma3.embedding_length"))
    n_head, n_kv = int(field(reader, "gemma3.attention.head_count")), int(field(reader, "gemma3.attention.head_count_kv"))
    hd = int(field(reader, "gemma3.attention.key_length"))
    n_layer, eps = int(field(reader, "gemma3.block_count")), float(field(reader, "gemma3.attention.layer_norm_rms_epsilon"))
    base, window = float(field(reader, "gemma3.rope.freq_base")), int(field(reader, "gemma3.attention.sliding_window"))
    n, group = len(tokens), n_head // n_kv

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope(x, pos, theta_base):
        # Halves pair up (NeoX), as in Hugging Face's rotate_half.
        half = hd // 2
        theta = pos[:, None] * theta_base ** (-2 * np.arange(half) / hd)
        c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)

    def gelu_tanh(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

    embd = gguf.quants.dequantize(T["token_embd.weight"].data, T["token_embd.weight"].tensor_type)
    x = embd[tokens].astype(np.float64) * np.sqrt(d)
    pos = np.arange(n)
    causal = pos[None, :] <= pos[:, None]
    in_window = pos[:, None] - pos[None, :] < window
    for l in range(n_layer):
        local = l % 6 < 5
        mask = np.where(causal & (in_window if local else True), 0.0, -np.inf)
        theta_base = 10000.0 if local else base
        h = rms(x, W(f"blk.{l}.attn_norm.weight"))
        q = rms((h @ W(f"blk.{l}.attn_q.weight").T).reshape(n, n_head, hd), W(f"blk.{l}.attn_q_norm.weight"))
        k = rms((h @ W(f"blk.{l}.attn_k.weight").T).reshape(n, n_kv, hd), W(f"blk.{l}.attn_k_norm.weight"))
        v = (h @ W(f"blk.{l}.attn_v.weight").T).reshape(n, n_kv, hd)
        q, k = rope(q, pos, theta_base), rope(k, pos, theta_base)
        out = np.zeros((n, n_head, hd))
        for j in range(n_head):
            sc = q[:, j] @ k[:, j // group].T / np.sqrt(hd) + mask
            p = np.exp(sc - sc.max(1, keepdims=True))
            out[:, j] = (p / p.sum(1, keepdims=True)) @ v[:, j // group]
        attn = out.reshape(n, n_head * hd) @ W(f"blk.{l}.attn_output.weight").T
        x = x + rms(attn, W(f"blk.{l}.post_attention_norm.weight"))
        h = rms(x, W(f"blk.{l}.ffn_norm.weight"))
        g, u = h @ W(f"blk.{l}.ffn_gate.weight").T, h @ W(f"blk.{l}.ffn_up.weight").T
        ffn = (gelu_tanh(g) * u) @ W(f"blk.{l}.ffn_down.weight").T
        x = x + rms(ffn, W(f"blk.{l}.post_ffw_norm.weight"))
    x = rms(x, W("output_norm.weight"))
    # The tied output, a slice of the vocabulary at a time (all of it in f64 is 1.3 GB).
    logits = np.empty((n, embd.shape[0]))
    for start in range(0, embd.shape[0], 16384):
        logits[:, start : start + 16384] = x @ embd[start : start + 16384].astype(np.float64).T
    return logits


def record_case(llm, reader, name, tokens):
    llm.reset()
    llm.eval(tokens)
    llama = np.asarray(llm.scores[: len(tokens)], dtype=np.float32)
    exact = exact_logits(reader, tokens)
    rows = []
    for e, l in zip(exact, llama):
        top = np.argsort(-e)[:TOP]
        e_sorted, l_sorted = np.sort(e), np.sort(l)
        rows.append(b"".join([
            top.astype("<u4").tobytes(),
            e[top].astype("<f4").tobytes(),
            l[top].astype("<f4").tobytes(),
            np.array([e_sorted[-1] - e_sorted[-2]], "<f4").tobytes(),
            np.array([np.argmax(l)], "<u4").tobytes(),
            np.array([l_sorted[-1] - l_sorted[-2]], "<f4").tobytes(),
        ]))
    (OUT / f"{name}.top.bin").write_bytes(b"".join(rows))
    agree = np.mean(exact.argmax(1) == llama.argmax(1))
    print(f"{name}: {len(tokens)} tokens; llama.cpp's top-1 equals the exact pass's at {agree:.3f} of positions")
    return {"name": name, "tokens": tokens, "file": f"{name}.top.bin"}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    reader = gguf.GGUFReader(str(MODEL))
    llm = Llama(model_path=str(MODEL), n_ctx=1024, n_batch=1024, n_ubatch=1024, logits_all=True, verbose=False, n_threads=2, seed=0)
    tokenizations = [{"text": t, "special": s, "ids": llm.tokenize(t.encode(), add_bos=False, special=s)} for t in HARD for s in (False, True)]

    chat = llm.tokenize(CHAT_PROMPT.encode(), add_bos=True, special=True)
    # Past the sliding window: this repository's README, cut to 700 tokens.
    long_text = (ROOT / "README.md").read_text()
    long = llm.tokenize(long_text.encode(), add_bos=True, special=False)[:700]
    cases = [record_case(llm, reader, "chat", chat), record_case(llm, reader, "long", long)]

    llm.reset()
    llm.eval(chat)
    answer, margins = [], []
    for _ in range(16):
        scores = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        top2 = np.sort(scores)[-2:]
        tok = int(np.argmax(scores))
        answer.append(tok)
        margins.append(float(top2[1] - top2[0]))
        if tok in (1, 106):  # <eos>, <end_of_turn>
            break
        llm.eval([tok])
    text = llm.detokenize(answer).decode("utf-8", "replace")
    (OUT / "reference.json").write_text(json.dumps({
        "model": MODEL.name,
        "sha256": SHA256,
        "n_vocab": llm.n_vocab(),
        "top": TOP,
        "question": QUESTION,
        "prompt": CHAT_PROMPT,
        "cases": cases,
        "greedy_answer": answer,
        "greedy_margins": margins,
        "greedy_text": text,
        "tokenizations": tokenizations,
    }, ensure_ascii=False, indent=1) + "\n")
    print(f"answer {text!r}; smallest margin {min(margins):.2f}")


if __name__ == "__main__":
    main()
