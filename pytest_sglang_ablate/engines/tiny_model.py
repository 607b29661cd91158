"""Write a tiny random-weight Llama model and its tokenizer to a folder, in seconds, with nothing downloaded.

    python -m pytest_sglang_ablate.engines.tiny_model OUT_DIR

Run it with the engine's Python (it needs torch, transformers and tokenizers). The model is 2 layers, hidden
256, vocabulary 2048: enough for a real engine to load, schedule and stream, fast on two CPU cores. Its output
is gibberish and almost never EOS, so every request runs to max_tokens (what benchmarks want anyway). The
recipe and the CPU engine are in docs/engines.md.
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


def write(out: Path, vocab: int = 2048, seed: int = 0) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

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
        bos_token_id=bos,
        eos_token_id=tok.token_to_id("<|eot_id|>"),
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        eos_token_id=[tok.token_to_id("<|eot_id|>"), tok.token_to_id("<|end_of_text|>")], do_sample=False
    )
    model.save_pretrained(out)
    # transformers 5 writes only `rope_parameters`; engines still read `rope_theta`
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.setdefault("rope_theta", 10000.0)
    cfg_path.write_text(json.dumps(cfg, indent=2))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pytest_sglang_ablate.engines.tiny_model OUT_DIR", file=sys.stderr)
        return 2
    write(Path(argv[0]))
    print(f"tiny model written to {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
