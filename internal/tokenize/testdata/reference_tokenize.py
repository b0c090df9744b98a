#!/usr/bin/env python3
"""Reference tokenizer for lmood's internal/tokenize parity test.

Builds a Hugging Face `tokenizers` tokenizer from the tokenizer metadata of a
GGUF file (read with the `gguf` package) and tokenizes texts with it. The
pipeline mirrors the Hugging Face tokenizer.json of the model family named by
tokenizer.ggml.pre, e.g. for "smollm" (SmolLM/SmolLM2):
Digits(individual_digits=True) then ByteLevel(add_prefix_space=False), a BPE
model over the GGUF vocabulary and merges, and control tokens (type 3) and
user-defined tokens (type 4) registered as added tokens.

Usage:
  reference_tokenize.py vocab GGUF            print the tokenizer metadata as JSON
  reference_tokenize.py encode GGUF [CASES] [PRE]
                                              read JSON lines ({"text": ...} or a
                                              bare JSON string) from CASES or
                                              stdin, print one JSON list of IDs
                                              per line (special tokens are
                                              matched; BOS/EOS are not added);
                                              PRE overrides tokenizer.ggml.pre
                                              (to cross-check other pre-tokenizers
                                              on the same vocabulary)
"""
import json
import sys

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
         r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def read_vocab(path):
    r = gguf.GGUFReader(path)

    def get(key, default=None):
        f = r.fields.get(key)
        return default if f is None else f.contents()

    return {
        "model": get("tokenizer.ggml.model"),
        "pre": get("tokenizer.ggml.pre", "default"),
        "tokens": get("tokenizer.ggml.tokens"),
        "token_types": get("tokenizer.ggml.token_type"),
        "scores": get("tokenizer.ggml.scores"),
        "merges": get("tokenizer.ggml.merges", []),
        "bos": get("tokenizer.ggml.bos_token_id", -1),
        "eos": get("tokenizer.ggml.eos_token_id", -1),
        "add_bos": bool(get("tokenizer.ggml.add_bos_token", False)),
        "add_eos": bool(get("tokenizer.ggml.add_eos_token", False)),
    }


def split(pattern):
    return pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)


def build(v):
    if v["model"] != "gpt2":
        sys.exit("reference_tokenize.py: only tokenizer.ggml.model=gpt2 is supported, got %r" % v["model"])
    pre = v["pre"]
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    ignore_merges = False
    if pre == "smollm":
        seq = [pre_tokenizers.Digits(individual_digits=True),
               pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    elif pre in ("default", "gpt-2"):
        seq = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    elif pre in ("llama-bpe", "llama3"):
        seq = [split(LLAMA3), byte_level]
        ignore_merges = True
    elif pre == "qwen2":
        seq = [split(QWEN2), byte_level]
    else:
        sys.exit("reference_tokenize.py: unsupported tokenizer.ggml.pre %r" % pre)

    tokens = v["tokens"]
    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    merges = [tuple(m.split(" ", 1)) for m in v["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(seq)
    tok.decoder = decoders.ByteLevel()
    types = v["token_types"] or [1] * len(tokens)
    added = [AddedToken(t, special=(ty == 3), normalized=False)
             for t, ty in zip(tokens, types) if ty in (3, 4)]
    tok.add_tokens(added)
    return tok


def main(argv):
    if len(argv) < 3 or argv[1] not in ("vocab", "encode"):
        sys.exit(__doc__)
    v = read_vocab(argv[2])
    if argv[1] == "vocab":
        json.dump(v, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    if len(argv) > 4:
        v["pre"] = argv[4]
    tok = build(v)
    src = open(argv[3], encoding="utf-8") if len(argv) > 3 and argv[3] != "-" else sys.stdin
    out = sys.stdout
    for line in src:
        if not line.strip():
            continue
        case = json.loads(line)
        text = case["text"] if isinstance(case, dict) else case
        ids = tok.encode(text, add_special_tokens=False).ids
        out.write(json.dumps(ids) + "\n")


if __name__ == "__main__":
    main(sys.argv)
