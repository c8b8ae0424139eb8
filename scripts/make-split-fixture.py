#!/usr/bin/env python3
"""Split a committed fixture model into a three-part GGUF with gguf-py's own splitter (the
`split.*` keys llama.cpp's gguf-split writes), and record llama.cpp's greedy continuation of
the split model, loaded from its first part.

Output: tests/fixtures/split/tiny-q8_0-0000{1,2,3}-of-00003.gguf and split.json.
Needs: pip install gguf numpy llama-cpp-python (see scripts/make-fixtures.py).
"""
import json
import sys
from pathlib import Path

import gguf
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests/fixtures/tiny-q8_0.gguf"
OUT = ROOT / "tests/fixtures/split"


def split(n_parts=3):
    reader = gguf.GGUFReader(SOURCE)
    arch = reader.fields["general.architecture"].contents()
    per_part = -(-len(reader.tensors) // n_parts)
    writer = gguf.GGUFWriter(OUT / "tiny-q8_0.gguf", arch, split_max_tensors=per_part)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(name, field.contents(), vtype, sub_type=field.types[-1])
        else:
            writer.add_key_value(name, field.contents(), vtype)
    for t in reader.tensors:
        # Raw quantized bytes; the shape given is the byte shape gguf-py expects for them.
        writer.add_tensor(t.name, np.asarray(t.data), raw_shape=t.data.shape, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    parts = sorted(OUT.glob("tiny-q8_0-*-of-*.gguf"))
    assert len(parts) == n_parts, parts
    return parts


def main():
    from llama_cpp import Llama

    parts = split()
    reference = json.loads((ROOT / "tests/fixtures/tiny-q8_0.json").read_text())["greedy"]
    llm = Llama(model_path=str(parts[0]), n_ctx=reference["ctx"], n_batch=512, logits_all=True, verbose=False, n_threads=2, seed=0)
    llm.reset()
    llm.eval(reference["prompt"])
    tokens = []
    for _ in range(len(reference["tokens"])):
        tok = int(np.argmax(np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)))
        tokens.append(tok)
        llm.eval([tok])
    meta = {"parts": [p.name for p in parts], "part_bytes": [p.stat().st_size for p in parts], "unsplit": SOURCE.name, "ctx": reference["ctx"], "prompt": reference["prompt"], "tokens": tokens}
    (OUT / "split.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"split into {len(parts)} parts; llama.cpp greedy on the split model {'equals' if tokens == reference['tokens'] else 'DIFFERS FROM'} the unsplit one", file=sys.stderr)


if __name__ == "__main__":
    main()
