"""Write a tiny model and its tokenizer to a folder, in seconds, with nothing downloaded.

    python -m pytest_sglang_ablate.engines.tiny_model OUT_DIR                  # Llama, random weights
    python -m pytest_sglang_ablate.engines.tiny_model --deepseek-v3 OUT_DIR    # DeepSeek-V3 shape, config only

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


def tokenizer(out: Path, vocab: int) -> dict[str, int]:
    """An offline byte-level BPE tokenizer with a Llama-3-style chat template; returns its special token ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(training_text(), trainer=trainer)
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


def write_deepseek_v3(out: Path, vocab: int = 2048) -> None:
    """The tokenizer and config of a toy DeepSeek-V3, for `--load-format dummy` (no torch needed)."""
    ids = tokenizer(out, vocab)
    config = {**DEEPSEEK_V3, "vocab_size": vocab, "bos_token_id": ids["bos"], "eos_token_id": ids["eot"]}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    generation = {"bos_token_id": ids["bos"], "eos_token_id": [ids["eot"], ids["end"]], "do_sample": False}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2))


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or (len(argv) == 2 and argv[0] != "--deepseek-v3"):
        print("usage: python -m pytest_sglang_ablate.engines.tiny_model [--deepseek-v3] OUT_DIR", file=sys.stderr)
        return 2
    if len(argv) == 2:
        write_deepseek_v3(Path(argv[1]))
        print(f"tiny DeepSeek-V3 config and tokenizer written to {argv[1]} (for --load-format dummy)")
    else:
        write(Path(argv[0]))
        print(f"tiny model written to {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
