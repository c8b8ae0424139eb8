#!/usr/bin/env python3
"""Tokenizer and chat-template references for Hearth's text layer.

For each pre-tokenizer llama.cpp distinguishes (`tokenizer.ggml.pre`), writes a vocabulary-only
GGUF with a byte-level BPE vocabulary trained here on multilingual text, and records
llama.cpp's token ids (PyPI `llama-cpp-python`, `Llama.tokenize`) for hard strings, with and
without special-token parsing. Chat templates are rendered with jinja2, as transformers does.

    python3 scripts/make-text-fixtures.py              # writes tests/fixtures/text/
    python3 scripts/make-text-fixtures.py templates    # only templates.json
"""

import json
import sys
from pathlib import Path

import gguf
import jinja2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from importlib import import_module

fixtures = import_module("make-fixtures")

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "text"

TRAIN = """The quick brown fox jumps over the lazy dog. I'm sure they've said we'll do it; don't you think?
Hello world! HELLO WORLD. camelCaseIdentifier snake_case_name 12345 67890 3.14159 1,000,000
fn main() { println!("{}", x + 1); } // code comments and    spaces
Привет, мир! Как дела? こんにちは世界。今日はいい天気です。 مرحبا بالعالم 안녕하세요 세계
Emoji: 👋🏽 🚀 ✨ and accents: café naïve résumé Ünïcödé
""" * 3 + """camelCaseString XMLHttpRequest HeLLo WoRLD getHTTPResponseCode
1234567 89 2024-11-23 3.14159 1,000,000 007
(hello) [world] {x} "quoted" 'single' <tag>
it's IT'S you'd WE'LL they've I'm
a   b		c  \n\n  d
""" * 6

PRE_TYPES = ["default", "gpt-2", "llama3", "dbrx", "gpt-4o", "qwen2"]

HARD = [
    "Hello world",
    " Hello world",
    "  leading and trailing  ",
    "I'm don't WE'LL they've you'd she's IT'S",
    "HeLLo WoRLD camelCaseString XMLHttpRequest",
    "1234567 89 3.14159 1,000,000 2024-11-23 007",
    "a   b\t\tc  \n\n  d\r\ne",
    "line one\nline two\n\n\nline five\n",
    "\t\tindented\n    code",
    "fn main() { println!(\"{}\", x + 1); }",
    "Привет, мир! Как дела?",
    "こんにちは世界。今日はいい天気です。",
    "مرحبا بالعالم",
    "안녕하세요 세계",
    "👋🏽 🚀✨ emoji👍",
    "café naïve résumé Ünïcödé e\u0301",
    "<|im_start|>user<|im_sep|>What is 2+2?<|im_end|><|im_start|>assistant<|im_sep|>",
    "<|system|>Be brief.<|end|><|user|>Hi<|end|><|assistant|>",
    "text<|im_end|>more <|end|> <|unknown|>",
    "",
    " ",
    "\n",
    "!!!???...,,,;;;",
    "x" * 50,
    "getHTTPResponseCode(hello) [world]",
    "Ünïcödé ÜBER über",
]

TEMPLATES = {
    "phi-4": (
        "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}"
        "{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + message['content'] + '<|im_end|>'}}"
        "{% elif (message['role'] == 'assistant') %}{{'<|im_start|>assistant<|im_sep|>' + message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}"
    ),
    "phi-4-mini": (
        "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}"
        "{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}"
        "{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
    ),
    "with-filters": (
        "{{ bos_token }}{% for m in messages %}{% if loop.first and m.role != 'system' %}{{ '[no system]' }}{% endif %}"
        "{{ m.role | upper }}: {{ m.content | trim }}{% if not loop.last %}\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}\nASSISTANT:{% endif %}"
    ),
}

# Qwen 3's template (namespaces, reversed slices, Python string methods), as its GGUFs carry it.
TEMPLATES["qwen3"] = (OUT / "qwen3.jinja").read_text()

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "  Name a color.  "}],
    [{"role": "user", "content": "Think first."}, {"role": "assistant", "content": "<think>\nSome reasoning.\n</think>\n\nThe answer."}],
]


def write_vocab_only(path, describe):
    """A GGUF with a vocabulary and no tensors; `describe(writer)` adds the tokenizer keys.
    The minimal hyper-parameters make llama.cpp accept it (vocab_only loads no tensors)."""
    w = gguf.GGUFWriter(str(path), "phi3")
    describe(w)
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_vocab_gguf(path, pre):
    tokens, types, merges = fixtures.build_vocab_from(TRAIN, n_merges=600, across_words=True, extra_tokens=[" Hello", "world", "camelCase", " 12345", "HELLO"])

    def describe(w):
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(tokens.index("<|endoftext|>"))
        w.add_eos_token_id(tokens.index("<|im_end|>"))
        w.add_add_bos_token(False)
        w.add_chat_template(TEMPLATES["phi-4"])

    write_vocab_only(path, describe)


def build_spm_vocab(text, n_merges=600):
    """A SentencePiece-style vocabulary like Phi-3's: <unk>, <s>, </s>, 256 byte tokens, then
    pieces ("▁" marks a space) whose scores order the merges, then chat markers."""
    words = {}
    for line in text.split("\n"):
        for w in line.split(" "):
            if w:
                key = tuple("\u2581" + w)
                words[key] = words.get(key, 0) + 1
    chars = sorted({c for w in words for c in w})
    pieces = [a + b for a, b in fixtures.train_merges(words, n_merges)]
    scores = [-float(i + 1) for i in range(len(pieces))]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    tok_scores = [0.0] * len(tokens)
    for i, c in enumerate(chars):
        tokens.append(c)
        types.append(1)
        tok_scores.append(-1e5 - i)
    for p, sc in zip(pieces, scores):
        if p not in tokens:
            tokens.append(p)
            types.append(1)
            tok_scores.append(sc)
    for marker, ty in [("<|system|>", 4), ("<|user|>", 4), ("<|assistant|>", 4), ("<|end|>", 3), ("<|endoftext|>", 3)]:
        tokens.append(marker)
        types.append(ty)
        tok_scores.append(0.0)
    return tokens, types, tok_scores


def write_spm_gguf(path):
    tokens, types, scores = build_spm_vocab(TRAIN.replace("\t", " "))

    def describe(w):
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_scores(scores)
        w.add_bos_token_id(1)
        w.add_eos_token_id(tokens.index("<|endoftext|>"))
        w.add_add_bos_token(False)
        w.add_chat_template(TEMPLATES["phi-4-mini"])

    write_vocab_only(path, describe)


def record_tokenizations(llm, path, name):
    cases = []
    for text in HARD:
        for special in (False, True):
            ids = llm.tokenize(text.encode(), add_bos=False, special=special)
            cases.append({"text": text, "special": special, "ids": ids})
    (OUT / f"{name}.json").write_text(json.dumps({"model": path.name, "cases": cases}, ensure_ascii=False, indent=1) + "\n")
    print(f"{name}: {len(cases)} tokenizations", file=sys.stderr)


def render_templates():
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as transformers renders
    renders = []
    for name, template in TEMPLATES.items():
        for conv in CONVERSATIONS:
            for gen in (True, False):
                text = env.from_string(template).render(messages=conv, add_generation_prompt=gen, bos_token="<s>", eos_token="<|endoftext|>")
                renders.append({"template": name, "messages": conv, "add_generation_prompt": gen, "rendered": text})
    (OUT / "templates.json").write_text(json.dumps({"templates": TEMPLATES, "renders": renders}, ensure_ascii=False, indent=1) + "\n")


def main():
    from llama_cpp import Llama

    OUT.mkdir(parents=True, exist_ok=True)
    for pre in PRE_TYPES:
        path = OUT / f"vocab-{pre}.gguf"
        write_vocab_gguf(path, pre)
        record_tokenizations(Llama(model_path=str(path), vocab_only=True, verbose=False), path, f"vocab-{pre}")
    path = OUT / "vocab-spm.gguf"
    write_spm_gguf(path)
    record_tokenizations(Llama(model_path=str(path), vocab_only=True, verbose=False), path, "vocab-spm")
    render_templates()


if __name__ == "__main__":
    # `templates`: only re-render templates.json (jinja2 alone; no llama.cpp needed).
    if sys.argv[1:] == ["templates"]:
        render_templates()
    else:
        main()
