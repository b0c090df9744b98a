#!/usr/bin/env python3
"""Golden files for lmood's transformers reference test (internal/arch/hfref_test.go).

For each family this builds a tiny, randomly initialised Hugging Face model
with a fixed seed, saves it with a tiny byte-level BPE tokenizer, converts it
with llama.cpp's own convert_hf_to_gguf.py (--outtype f32), and records what
transformers computes (float32, eager attention) on a fixed list of token IDs
at each of lmood's measurement sites:

  resid.0   hidden_states[0]: the input embeddings as the first block sees
            them (Gemma: scaled by sqrt(d); GPT-2: token + position embedding)
  resid.i   the residual stream after block i (a forward hook on block i's
            output; HF's hidden_states[i] for i < n, while hidden_states[n]
            already has the final norm applied)
  norm.i    for i < n, the output of block i+1's input norm (a hook); for
            i = n, HF's hidden_states[n] (the final norm's output)
  attn.i    block i's attention output added to the residual (after the
            output projection; Gemma: after its post-attention norm)
  mlp.i     block i's MLP output added to the residual (Gemma: after its
            post-feed-forward norm)
  logits    the model's logits

Writes, into --out: <family>.gguf, <family>.f32 (every array, float32
little-endian, one after the other) and index.json (the arrays' names,
offsets and shapes, the token IDs, the package versions and the SHA-256 of the
llama.cpp source archive the converter came from).

Run it through scripts/hfref.sh, which builds the pinned environment.
Python is only needed to regenerate the golden files, never to run the test.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers
import tokenizers
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers

SEED = 1234
IDS = [5, 260, 17, 299, 42, 42, 0, 128, 77, 201, 3, 150]  # 12 tokens > Gemma's window
VOCAB_TRAIN = 300  # BPE vocabulary size asked of the trainer

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Eggplants are purple. Eggplants are fire-engine red.",
    "def add(a, b):\n    return a + b  # 12345",
    "In 1950 Alan Turing predicted that computers would one day think.",
    "A flower is the reproductive structure of flowering plants.",
] * 20


def make_tokenizer(dirpath: Path, family: str) -> int:
    """Trains a tiny byte-level BPE tokenizer, saves it as tokenizer.json (+
    tokenizer_config.json) and returns its vocabulary size."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_TRAIN, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                                eos_token="<|endoftext|>")
    fast.save_pretrained(dirpath)
    # phi3's converter takes the BPE path only for a GPT2Tokenizer.
    cfg_path = dirpath / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "GPT2TokenizerFast" if family != "phi3" else "GPT2Tokenizer"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return tok.get_vocab_size()


def make_sentencepiece(dirpath: Path) -> int:
    """Trains a tiny SentencePiece BPE model with byte fallback (Gemma 2's
    converter reads only tokenizer.model), saves it and returns its size."""
    import sentencepiece as spm
    corpus = dirpath / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(dirpath / "tokenizer"), model_type="bpe",
                                   vocab_size=VOCAB_TRAIN + 40, byte_fallback=True, hard_vocab_limit=False,
                                   pad_id=0, eos_id=1, bos_id=2, unk_id=3, minloglevel=2, num_threads=1)
    corpus.unlink()
    (dirpath / "tokenizer.vocab").unlink()
    return spm.SentencePieceProcessor(model_file=str(dirpath / "tokenizer.model")).vocab_size()


# The BPE pre-tokenizer llama.cpp's converter should record. The converter
# recognises a pre-tokenizer by hashing the token IDs of a test string, which a
# tiny trained vocabulary cannot reproduce; the test feeds token IDs, not text,
# so the name only has to be one lmood's tokenizer accepts.
PRE = {"gemma2": "", "llama": "llama-bpe", "qwen2": "qwen2", "qwen3": "qwen2", "gemma3": "default", "phi3": "gpt-2", "gpt2": "gpt-2"}


def build(family: str, vocab: int):
    """Returns (model, config description) of a tiny model of family."""
    T = transformers
    common = dict(vocab_size=vocab, max_position_embeddings=128)
    if family == "llama":
        cfg = T.LlamaConfig(hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                            **common)
        model = T.LlamaForCausalLM(cfg)
    elif family == "qwen2":
        cfg = T.Qwen2Config(hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                            use_sliding_window=False, **common)
        model = T.Qwen2ForCausalLM(cfg)
    elif family == "qwen3":
        cfg = T.Qwen3Config(hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, head_dim=24, rms_norm_eps=1e-6, rope_theta=1000000.0,
                            tie_word_embeddings=False, use_sliding_window=False, **common)
        model = T.Qwen3ForCausalLM(cfg)
    elif family == "gemma3":
        # 6 blocks: llama.cpp (and lmood) read Gemma 3's pattern as 5 sliding-window
        # blocks then a global one; the window (4) is shorter than the prompt.
        # query_pre_attn_scalar = head_dim, as in Gemma 3 270M..12B: the converter
        # writes no query scale, llama.cpp uses 1/sqrt(head_dim).
        cfg = T.Gemma3TextConfig(hidden_size=64, intermediate_size=64, num_hidden_layers=6, num_attention_heads=4,
                                 num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16, sliding_window=4,
                                 rms_norm_eps=1e-6, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                                 hidden_activation="gelu_pytorch_tanh", attn_logit_softcapping=None,
                                 final_logit_softcapping=None, tie_word_embeddings=True, **common)
        model = T.Gemma3ForCausalLM(cfg)
    elif family == "gemma2":
        # 2 blocks: sliding-window then global (Gemma 2's pattern); both
        # soft-caps that change the values (attention 5; final 30, as in Gemma 2, against raw logits up to ~75).
        cfg = T.Gemma2Config(hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, head_dim=24, query_pre_attn_scalar=24, sliding_window=4,
                             rms_norm_eps=1e-6, rope_theta=10000.0, hidden_activation="gelu_pytorch_tanh",
                             attn_logit_softcapping=5.0, final_logit_softcapping=30.0, tie_word_embeddings=True,
                             pad_token_id=0, eos_token_id=1, bos_token_id=2, **common)
        model = T.Gemma2ForCausalLM(cfg)
    elif family == "phi3":
        cfg = T.Phi3Config(hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=4, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                           original_max_position_embeddings=128, pad_token_id=0, bos_token_id=0, eos_token_id=0,
                           **common)
        model = T.Phi3ForCausalLM(cfg)
    elif family == "gpt2":
        # n_ctx: GPT-2 checkpoints carry it and the converter reads it.
        cfg = T.GPT2Config(vocab_size=vocab, n_positions=64, n_ctx=64, n_embd=64, n_layer=2, n_head=4,
                           layer_norm_epsilon=1e-5, activation_function="gelu_new", bos_token_id=0, eos_token_id=0)
        model = T.GPT2LMHeadModel(cfg)
    else:
        raise SystemExit(f"unknown family {family}")
    return model


def randomize(model: torch.nn.Module, family: str) -> None:
    """Overwrites every parameter with seeded values of a useful size: HF's
    init leaves norms at 1 (Gemma: 0) and biases at 0, which would hide a
    misread norm or bias."""
    g = torch.Generator().manual_seed(SEED)
    gemma = family.startswith("gemma")
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.ndim == 1 and ("norm" in name or ".ln_" in name or name.endswith("ln_f.weight")) and name.endswith("weight"):
                p.copy_((0.0 if gemma else 1.0) + 0.2 * r)
            elif p.ndim == 1:  # biases
                p.copy_(0.1 * r)
            elif "embed" in name or name.endswith("wte.weight") or name.endswith("wpe.weight"):
                p.copy_((0.3 if name.endswith("wpe.weight") else 1.0) * r)
            else:  # linear [out, in] (GPT-2's Conv1D is [in, out])
                fan_in = p.shape[0] if family == "gpt2" else p.shape[1]
                p.copy_(r / math.sqrt(fan_in))


def layers_of(model, family):
    return model.transformer.h if family == "gpt2" else model.model.layers


def record(model, family: str, ids: list[int]) -> dict[str, np.ndarray]:
    """Runs model on ids and returns lmood's sites, each [T, width] float32."""
    blocks = layers_of(model, family)
    n = len(blocks)
    got: dict[str, torch.Tensor] = {}
    hooks = []

    def keep(name):
        def hook(_mod, _inp, out):
            got[name] = (out[0] if isinstance(out, tuple) else out).detach()
        return hook

    gemma = family.startswith("gemma")
    for i, b in enumerate(blocks):
        hooks.append(b.register_forward_hook(keep(f"resid.{i + 1}")))
        if family == "gpt2":
            hooks.append(b.ln_1.register_forward_hook(keep(f"norm.{i}")))
            hooks.append(b.attn.register_forward_hook(keep(f"attn.{i + 1}")))
            hooks.append(b.mlp.register_forward_hook(keep(f"mlp.{i + 1}")))
        else:
            hooks.append(b.input_layernorm.register_forward_hook(keep(f"norm.{i}")))
            if gemma:
                hooks.append(b.post_attention_layernorm.register_forward_hook(keep(f"attn.{i + 1}")))
                hooks.append(b.post_feedforward_layernorm.register_forward_hook(keep(f"mlp.{i + 1}")))
            else:
                hooks.append(b.self_attn.register_forward_hook(keep(f"attn.{i + 1}")))
                hooks.append(b.mlp.register_forward_hook(keep(f"mlp.{i + 1}")))
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    for h in hooks:
        h.remove()
    hs = out.hidden_states
    assert len(hs) == n + 1, (len(hs), n)
    got["resid.0"] = hs[0]
    got[f"norm.{n}"] = hs[n]  # HF's last hidden state: the final norm's output
    got["logits"] = out.logits
    # HF's hidden_states[i] for 0 < i < n is the residual after block i: check
    # that the hooks saw the same tensors.
    for i in range(1, n):
        assert torch.equal(hs[i], got[f"resid.{i}"]), f"{family}: hidden_states[{i}] is not block {i}'s output"
    order = (["resid.0"] + [f"resid.{i}" for i in range(1, n + 1)] + [f"norm.{i}" for i in range(n + 1)]
             + [f"attn.{i}" for i in range(1, n + 1)] + [f"mlp.{i}" for i in range(1, n + 1)] + ["logits"])
    return {k: got[k][0].to(torch.float32).numpy() for k in order}


CONVERT_SHIM = r"""
import sys, runpy
llamacpp, pre = sys.argv[1], sys.argv[2]
sys.path.insert(0, llamacpp)
sys.path.insert(1, llamacpp + "/gguf-py")
import conversion.base as base
# See PRE in make_fixtures.py: the tiny vocabulary's hash is unknown to the converter.
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
sys.argv = [llamacpp + "/convert_hf_to_gguf.py"] + sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def convert(llamacpp: Path, hfdir: Path, out: Path, pre: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(CONVERT_SHIM)
        shim = f.name
    try:
        subprocess.run([sys.executable, shim, str(llamacpp), pre, "--outtype", "f32", "--outfile", str(out),
                        str(hfdir)], check=True, stdout=subprocess.DEVNULL)
    finally:
        os.unlink(shim)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


HF_CLASS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
            "gemma3": "Gemma3ForCausalLM", "gemma2": "Gemma2ForCausalLM", "phi3": "Phi3ForCausalLM", "gpt2": "GPT2LMHeadModel"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llamacpp", type=Path, required=True,
                    help="vendor/llama.cpp of the extracted archive (convert_hf_to_gguf.py, conversion/, gguf-py/)")
    ap.add_argument("--archive", type=Path, required=True, help="the llama-cpp-python source archive (for its SHA-256)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("families", nargs="*", default=list(HF_CLASS))
    args = ap.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    index_path = args.out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"families": {}}
    index.update({
        "generator": "scripts/hfref/make_fixtures.py",
        "seed": SEED,
        "ids": IDS,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                     "numpy": np.__version__, "sentencepiece": importlib.metadata.version("sentencepiece")},
        "converter": {"archive": args.archive.name, "sha256": sha256(args.archive),
                      "script": "vendor/llama.cpp/convert_hf_to_gguf.py", "outtype": "f32"},
    })
    for fam in args.families:
        with tempfile.TemporaryDirectory() as td:
            hfdir = Path(td) / fam
            hfdir.mkdir()
            vocab = make_sentencepiece(hfdir) if fam == "gemma2" else make_tokenizer(hfdir, fam)
            assert max(IDS) < vocab
            model = build(fam, vocab)
            randomize(model, fam)
            model.config._attn_implementation = "eager"
            model = model.to(torch.float32).eval()
            model.save_pretrained(hfdir, safe_serialization=True)
            # Reload what was saved, as a user's checkpoint would be loaded.
            model = getattr(transformers, HF_CLASS[fam]).from_pretrained(hfdir, dtype=torch.float32,
                                                                         attn_implementation="eager").eval()
            arrays = record(model, fam, IDS)
            gguf = args.out / f"{fam}.gguf"
            convert(args.llamacpp, hfdir, gguf, PRE[fam])
        entries, off = [], 0
        with open(args.out / f"{fam}.f32", "wb") as f:
            for name, a in arrays.items():
                a = np.ascontiguousarray(a, dtype="<f4")
                f.write(a.tobytes())
                entries.append({"name": name, "offset": off, "shape": list(a.shape)})
                off += a.size
        index["families"][fam] = {"hf_class": HF_CLASS[fam], "layers": len(layers_of(model, fam)),
                                  "vocab": vocab, "gguf_sha256": sha256(gguf),
                                  "config": json.loads(model.config.to_json_string()), "arrays": entries}
        print(f"{fam}: {gguf.stat().st_size} bytes gguf, {4 * off} bytes of arrays", file=sys.stderr)
    index_path.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
