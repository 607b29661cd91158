"""Write a tiny model and its tokenizer to a folder, in seconds, with nothing downloaded.

    python -m pytest_sglang_ablate.engines.tiny_model OUT_DIR                  # Llama, random weights
    python -m pytest_sglang_ablate.engines.tiny_model --deepseek-v3 OUT_DIR    # DeepSeek-V3 shape, config only
    python -m pytest_sglang_ablate.engines.tiny_model --deepseek-v3 --real-dims [--layers N] OUT_DIR
                                            # a slice of DeepSeek-V3 at its real sizes, N layers, config only

Run it with the engine's Python. The Llama (2 layers, hidden 256, vocabulary 2048; needs torch, transformers
and tokenizers) is enough for a real engine to load, schedule and stream, fast on two CPU cores. The DeepSeek-V3
one (MLA, MoE, one NextN layer; transformers and tokenizers) has no weights: SGLang's `--load-format dummy` makes
them, so a GPU checks the real DeepSeek code paths in minutes. Outputs are gibberish and almost never EOS, so
every request runs to max_tokens (what benchmarks want anyway). docs/engines.md has the recipes.
"""

from __future__ import annotations

import json
import sys
import sysconfig
from pathlib import Path

SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|pad|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def training_text(limit: int = 60) -> list[str]:
    """Some real text to train the byte-level BPE on: the first Python stdlib modules (always on disk)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return [p.read_text(encoding="utf-8", errors="replace") for p in sorted(stdlib.glob("*.py"))[:limit]]


TRAINED_VOCAB = 2048  # what the BPE learns from the stdlib's text; a larger vocabulary is filled up after it


def _pad(tok: object, vocab: int) -> object:
    """The tokenizer with filler tokens `<r2048>`, `<r2049>`, ... appended to its BPE vocabulary up to `vocab`
    ids, so that every id a model of that vocabulary can generate decodes (to the filler's own text)."""
    from tokenizers import Tokenizer

    data = json.loads(tok.to_str())  # type: ignore[attr-defined]
    table = data["model"]["vocab"]
    for i in range(len(table), vocab):
        table[f"<r{i}>"] = i
    return Tokenizer.from_str(json.dumps(data))


def tokenizer(out: Path, vocab: int) -> dict[str, int]:
    """An offline byte-level BPE tokenizer with a Llama-3-style chat template; returns its special token ids. Past
    2,048 ids (DeepSeek-V3's 129,280) the learnt vocabulary is padded with filler tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(vocab, TRAINED_VOCAB),
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(training_text(), trainer=trainer)
    if vocab > tok.get_vocab_size():
        tok = _pad(tok, vocab)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|pad|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return {"bos": bos, "eot": tok.token_to_id("<|eot_id|>"), "end": tok.token_to_id("<|end_of_text|>")}


def write(out: Path, vocab: int = 2048, seed: int = 0) -> None:
    """A 2-layer Llama with random weights (needs torch): for engines that load weights, as vLLM's CPU build."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    ids = tokenizer(out, vocab)
    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        vocab_size=vocab,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=ids["bos"],
        eos_token_id=ids["eot"],
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=[ids["eot"], ids["end"]], do_sample=False)
    model.save_pretrained(out)
    # transformers 5 writes only `rope_parameters`; engines still read `rope_theta`
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.setdefault("rope_theta", 10000.0)
    cfg_path.write_text(json.dumps(cfg, indent=2))


# DeepSeek-V3's architecture at toy size: MLA attention, 8 routed + 1 shared expert, 3 layers, one NextN (MTP)
# layer for speculative decoding. No weights: SGLang's --load-format dummy makes random ones from this config.
DEEPSEEK_V3 = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "torch_dtype": "bfloat16",
    "dtype": "bfloat16",
    "hidden_size": 512,
    "intermediate_size": 1024,
    "moe_intermediate_size": 256,
    "num_hidden_layers": 3,
    "num_nextn_predict_layers": 1,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "q_lora_rank": 384,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "n_shared_experts": 1,
    "n_routed_experts": 8,
    "num_experts_per_tok": 2,
    "routed_scaling_factor": 2.5,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "n_group": 1,
    "topk_group": 1,
    "topk_method": "noaux_tc",
    "scoring_func": "sigmoid",
    "norm_topk_prob": True,
    "ep_size": 1,
    "aux_loss_alpha": 0.001,
    "seq_aux": True,
    "hidden_act": "silu",
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    "attention_bias": False,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
    "use_cache": True,
}


# DeepSeek-V3's real sizes (its config.json on the Hub): what `--real-dims` keeps, with fewer layers. The first
# three layers are dense as in V3 (first_k_dense_replace 3), the rest MoE over 256 routed experts (+1 shared),
# top-8 of 8 groups / top-4 groups; the NextN (MTP) layer is kept. 129,280 tokens; bf16 (dummy weights).
REAL_DIMS = {
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "n_shared_experts": 1,
    "n_routed_experts": 256,
    "num_experts_per_tok": 8,
    "n_group": 8,
    "topk_group": 4,
    "routed_scaling_factor": 2.5,
    "max_position_embeddings": 163840,
}
REAL_VOCAB = 129280
# 3 dense + 3 MoE layers: 76 GB of bf16 weights, 99 GB with the NextN layer (a MoE layer of its own) that NEXTN
# rows load, which leaves an H200's 141 GB room for the KV cache and CUDA graphs (docs/engines.md)
REAL_LAYERS = 6


def slice_bytes(layers: int, nextn: bool = True) -> int:
    """The bf16 weight bytes of a real-dims slice of `layers` layers (+ its NextN layer): for choosing --layers."""
    d = REAL_DIMS
    h, heads = d["hidden_size"], d["num_attention_heads"]
    qk = d["qk_nope_head_dim"] + d["qk_rope_head_dim"]
    attention = (
        h * d["q_lora_rank"]
        + d["q_lora_rank"] * heads * qk
        + h * (d["kv_lora_rank"] + d["qk_rope_head_dim"])
        + d["kv_lora_rank"] * heads * (d["qk_nope_head_dim"] + d["v_head_dim"])
        + heads * d["v_head_dim"] * h
    )
    dense = attention + 3 * h * d["intermediate_size"]
    experts = d["n_routed_experts"] + d["n_shared_experts"]
    moe = attention + experts * 3 * h * d["moe_intermediate_size"] + h * d["n_routed_experts"]
    n_dense = min(3, layers - 1)
    total = n_dense * dense + (layers - n_dense) * moe + 2 * REAL_VOCAB * h
    if nextn:
        total += moe + 2 * h * h  # the NextN layer and its eh_proj
    return int(2 * total)


def deepseek_v3_config(real_dims: bool = False, layers: int | None = None) -> dict[str, object]:
    """The config.json of the toy DeepSeek-V3, or of a slice at its real sizes with `layers` layers."""
    if not real_dims:
        return dict(DEEPSEEK_V3)
    n = layers or REAL_LAYERS
    return {**DEEPSEEK_V3, **REAL_DIMS, "num_hidden_layers": n, "first_k_dense_replace": min(3, n - 1)}


def write_deepseek_v3(out: Path, vocab: int = 2048, real_dims: bool = False, layers: int | None = None) -> None:
    """The tokenizer and config of a toy DeepSeek-V3 (or a real-dims slice), for `--load-format dummy` (no torch
    needed)."""
    vocab = REAL_VOCAB if real_dims else vocab
    ids = tokenizer(out, vocab)
    base = deepseek_v3_config(real_dims, layers)
    config = {**base, "vocab_size": vocab, "bos_token_id": ids["bos"], "eos_token_id": ids["eot"]}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    generation = {"bos_token_id": ids["bos"], "eos_token_id": [ids["eot"], ids["end"]], "do_sample": False}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2))


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pytest_sglang_ablate.engines.tiny_model")
    parser.add_argument("--deepseek-v3", action="store_true", help="DeepSeek-V3's architecture, config only")
    parser.add_argument("--real-dims", action="store_true", help="with --deepseek-v3: its real sizes, fewer layers")
    parser.add_argument("--layers", type=int, help=f"with --real-dims: layers (default {REAL_LAYERS}, at least 2)")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    if (args.real_dims or args.layers) and not args.deepseek_v3:
        parser.error("--real-dims and --layers go with --deepseek-v3")
    if args.layers is not None and (not args.real_dims or args.layers < 2):
        parser.error("--layers needs --real-dims and at least 2 (one dense, one MoE)")
    if args.deepseek_v3:
        write_deepseek_v3(Path(args.out), real_dims=args.real_dims, layers=args.layers)
        what = "tiny DeepSeek-V3"
        if args.real_dims:
            n = args.layers or REAL_LAYERS
            what = f"DeepSeek-V3 slice ({n} layers at real sizes, {slice_bytes(n) / 1e9:.0f} GB of bf16 with NextN)"
        print(f"{what} config and tokenizer written to {args.out} (for --load-format dummy)")
    else:
        write(Path(args.out))
        print(f"tiny model written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
