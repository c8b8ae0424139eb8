#!/usr/bin/env python3
"""llama.cpp's answers for the built-in default model, SmolLM2-135M-Instruct (Q4_1).

Commits reference figures, never the model: run `scripts/fetch-default-model.sh` first.
Records, with PyPI `llama-cpp-python`:
  - token ids of a varied text (code, digits, Unicode, a chat transcript), specials on and off;
  - a chat prompt rendered from the file's own template by jinja2 (as transformers does),
    llama.cpp's tokens for it, and its teacher-forced logits at every position (stored as f16
    in `prompt.logits.f16`, row-major [n_tokens, n_vocab]);
  - llama.cpp's greedy answer with the top-1/top-2 margin at each step;
  - the same prompt's logits from an exact float64 forward pass written here in numpy over
    gguf-py's dequantized weights (`prompt.exact.logits.f16`): llama.cpp rounds activations to
    8 bits and keeps an f16 KV cache, which over 30 real layers moves its logits by up to
    cosine 0.97 from the exact values, so the exact pass is the tight reference and llama.cpp
    the independent one.
"""

import json
from pathlib import Path

import gguf
import jinja2
import numpy as np
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "tests" / "fixtures" / "smollm2"

VARIED = [
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "Order #12345 shipped on 2024-11-23 for $1,299.99 (3 items).",
    "Grüße aus Köln! Привет, мир. こんにちは世界 🌍👋🏽 naïve café",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi there.<|im_end|>",
    "   indented\ttabs\n\n\nand blank lines   ",
]
QUESTION = "What color is the sky on a clear day?"


def exact_logits(reader, tokens):
    """Llama forward pass in float64 (llama.cpp's conventions: NORM RoPE on permuted Q/K)."""
    T = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64) for t in reader.tensors}
    field = lambda k: reader.fields[k].parts[reader.fields[k].data[0]][0]
    d, n_head, n_kv = int(field("llama.embedding_length")), int(field("llama.attention.head_count")), int(field("llama.attention.head_count_kv"))
    n_layer, eps, base = int(field("llama.block_count")), float(field("llama.attention.layer_norm_rms_epsilon")), float(field("llama.rope.freq_base"))
    hd, n = d // n_head, len(tokens)

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope(x, pos):
        theta = pos[:, None] * base ** (-2 * np.arange(hd // 2) / hd)
        c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        a, b = x[..., 0::2].copy(), x[..., 1::2].copy()
        y = x.copy()
        y[..., 0::2], y[..., 1::2] = a * c - b * s, a * s + b * c
        return y

    x, pos, group = T["token_embd.weight"][tokens], np.arange(n), n_head // n_kv
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(n_layer):
        h = rms(x, T[f"blk.{l}.attn_norm.weight"])
        q = rope((h @ T[f"blk.{l}.attn_q.weight"].T).reshape(n, n_head, hd), pos)
        k = rope((h @ T[f"blk.{l}.attn_k.weight"].T).reshape(n, n_kv, hd), pos)
        v = (h @ T[f"blk.{l}.attn_v.weight"].T).reshape(n, n_kv, hd)
        out = np.zeros((n, n_head, hd))
        for j in range(n_head):
            sc = q[:, j] @ k[:, j // group].T / np.sqrt(hd) + mask
            p = np.exp(sc - sc.max(1, keepdims=True))
            out[:, j] = (p / p.sum(1, keepdims=True)) @ v[:, j // group]
        x = x + out.reshape(n, d) @ T[f"blk.{l}.attn_output.weight"].T
        h = rms(x, T[f"blk.{l}.ffn_norm.weight"])
        g, u = h @ T[f"blk.{l}.ffn_gate.weight"].T, h @ T[f"blk.{l}.ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ T[f"blk.{l}.ffn_down.weight"].T
    return rms(x, T["output_norm.weight"]) @ T.get("output.weight", T["token_embd.weight"]).T


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    reader = gguf.GGUFReader(str(MODEL))
    f = reader.fields["tokenizer.chat_template"]
    template = bytes(f.parts[f.data[0]]).decode()
    prompt = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(template).render(
        messages=[{"role": "user", "content": QUESTION}], add_generation_prompt=True)

    llm = Llama(model_path=str(MODEL), n_ctx=512, logits_all=True, verbose=False, n_threads=2, seed=0)
    tokenizations = [{"text": t, "special": s, "ids": llm.tokenize(t.encode(), add_bos=False, special=s)} for t in VARIED for s in (False, True)]
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.reset()
    llm.eval(tokens)
    logits = np.asarray(llm.scores[: len(tokens)], dtype=np.float32)
    logits.astype(np.float16).tofile(OUT / "prompt.logits.f16")

    exact_logits(reader, tokens).astype(np.float16).tofile(OUT / "prompt.exact.logits.f16")

    answer, margins = [], []
    for _ in range(16):
        scores = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        top2 = np.sort(scores)[-2:]
        tok = int(np.argmax(scores))
        margins.append(float(top2[1] - top2[0]))
        if tok == llm.token_eos() or tok == 2:
            answer.append(tok)
            break
        answer.append(tok)
        llm.eval([tok])
    text = llm.detokenize([t for t in answer if t != 2]).decode("utf-8", "replace")
    (OUT / "reference.json").write_text(json.dumps({
        "model": MODEL.name,
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "n_vocab": llm.n_vocab(),
        "question": QUESTION,
        "prompt": prompt,
        "prompt_tokens": tokens,
        "logits_file": "prompt.logits.f16",
        "exact_logits_file": "prompt.exact.logits.f16",
        "greedy_answer": answer,
        "greedy_margins": margins,
        "greedy_text": text,
        "tokenizations": tokenizations,
    }, ensure_ascii=False, indent=1) + "\n")
    print(f"prompt {len(tokens)} tokens; answer {text!r}; smallest margin {min(margins):.2f}")


if __name__ == "__main__":
    main()
