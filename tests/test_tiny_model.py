"""The model generator (engines/tiny_model.py): the toy DeepSeek-V3 and the slice at DeepSeek-V3's real sizes,
config and tokenizer only (no weights: SGLang's --load-format dummy makes them on the GPU)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pytest_sglang_ablate.engines.tiny_model import REAL_LAYERS, deepseek_v3_config, main, slice_bytes

ENGINE_PYTHON = Path(__file__).parent.parent / ".venv-vllm" / "bin" / "python"  # has tokenizers and transformers


def test_the_slice_has_deepseek_v3s_real_sizes_and_layer_layout() -> None:
    config = deepseek_v3_config(real_dims=True, layers=6)
    real = {  # DeepSeek-V3's config.json on the Hub
        "hidden_size": 7168,
        "intermediate_size": 18432,
        "moe_intermediate_size": 2048,
        "n_routed_experts": 256,
        "n_shared_experts": 1,
        "num_experts_per_tok": 8,
        "n_group": 8,
        "topk_group": 4,
        "num_attention_heads": 128,
        "q_lora_rank": 1536,
        "kv_lora_rank": 512,
        "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128,
        "v_head_dim": 128,
        "num_nextn_predict_layers": 1,
        "architectures": ["DeepseekV3ForCausalLM"],
        "torch_dtype": "bfloat16",
    }
    assert {k: config[k] for k in real} == real
    # as in V3: the first three layers dense, the rest MoE; with two layers, one of each
    assert (config["num_hidden_layers"], config["first_k_dense_replace"]) == (6, 3)
    small = deepseek_v3_config(real_dims=True, layers=2)
    assert (small["num_hidden_layers"], small["first_k_dense_replace"]) == (2, 1)
    assert deepseek_v3_config(real_dims=True)["num_hidden_layers"] == REAL_LAYERS
    toy = deepseek_v3_config()
    assert (toy["hidden_size"], toy["n_routed_experts"], toy["num_hidden_layers"]) == (512, 8, 3)


def test_the_weight_estimate_matches_what_sglang_loaded_on_the_h200() -> None:
    # 3 dense + 2 MoE layers without NextN: SGLang 0.5.15 reported 49.7 GB (GiB) of dummy weights on the H200
    assert slice_bytes(5, nextn=False) / 2**30 == pytest.approx(49.7, rel=0.01)
    # the default slice with its NextN layer fits an H200 (139 GiB usable) with room for KV cache and graphs
    assert slice_bytes(REAL_LAYERS) / 2**30 < 0.7 * 139


def test_the_command_line_refuses_layers_without_real_dims(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--deepseek-v3", "--layers", "4", "/tmp/unused"])
    assert e.value.code == 2 and "--layers needs --real-dims" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--real-dims", "/tmp/unused"])


@pytest.mark.skipif(not ENGINE_PYTHON.exists(), reason="needs .venv-vllm (scripts/cpu-engine.sh) for tokenizers")
def test_the_slice_writes_a_tokenizer_that_decodes_every_id_of_the_vocabulary(tmp_path: Path) -> None:
    out = tmp_path / "slice"
    done = subprocess.run(
        [str(ENGINE_PYTHON), "-m", "pytest_sglang_ablate.engines.tiny_model", "--deepseek-v3", "--real-dims", str(out)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "6 layers at real sizes, 99 GB of bf16 with NextN" in done.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["vocab_size"] == 129280 and not list(out.glob("*.safetensors"))
    check = (
        "import sys; from transformers import AutoTokenizer; t = AutoTokenizer.from_pretrained(sys.argv[1]); "
        "print(len(t), repr(t.decode([129279])), t('graphs are nice').input_ids[0] == t.bos_token_id)"
    )
    shown = subprocess.run([str(ENGINE_PYTHON), "-c", check, str(out)], capture_output=True, text=True, timeout=120)
    assert shown.stdout.split() == ["129280", "'<r129279>'", "True"], shown.stderr[-2000:]
