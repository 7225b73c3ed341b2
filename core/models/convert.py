"""GGUF checkpoint → plain Hugging Face directory (safetensors + config + tokenizer).

transformers dequantises GGUF tensors on load, but then marks the model as quantized
(`config.quantization_config`, `hf_quantizer`) and refuses `save_pretrained`. We rebuild the
architecture from the config without that flag and copy the weights over, once, so that every
later load is a plain safetensors read (seconds) instead of a GGUF dequantisation.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

from core.models.errors import ModelResolutionError


def load_gguf(gguf_path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model (dequantised) and tokenizer stored in one GGUF file."""
    # float32: the dequantiser computes in float32, so float32 keeps its output bit for bit;
    # bfloat16 would round away most of the Q4_1 scale/offset precision.
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    return model, tokenizer


def dequantized_copy(model: PreTrainedModel) -> PreTrainedModel:
    """The same weights in a model that transformers no longer treats as quantized."""
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    clean.load_state_dict(model.state_dict(), strict=True)
    clean.generation_config = copy.deepcopy(model.generation_config)
    if getattr(config, "tie_word_embeddings", False):
        out_emb, in_emb = clean.get_output_embeddings(), clean.get_input_embeddings()
        if out_emb is None or out_emb.weight is not in_emb.weight:
            raise ModelResolutionError("lm_head is not tied to embed_tokens after the GGUF conversion")
    return clean


def fix_special_tokens(
    tokenizer: PreTrainedTokenizerBase,
    config: PretrainedConfig,
    generation_config: GenerationConfig | None,
    *,
    eos_token: str | None = None,
    pad_token: str | None = None,
) -> None:
    """Set eos/pad on the tokenizer (when given) and mirror their ids into the model configs."""
    for attr, token in (("eos_token", eos_token), ("pad_token", pad_token)):
        if token is None or getattr(tokenizer, attr) == token:
            continue
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
            raise ModelResolutionError(f"{attr} {token!r} is not in the tokenizer's vocabulary")
        setattr(tokenizer, attr, token)
    for cfg in (config, generation_config):
        if cfg is None:
            continue
        cfg.eos_token_id = tokenizer.eos_token_id
        cfg.pad_token_id = tokenizer.pad_token_id
    # GGUF tokenizers carry no length limit, so `truncation=True` would never truncate.
    max_positions = getattr(config, "max_position_embeddings", None)
    if tokenizer.model_max_length >= VERY_LARGE_INTEGER and max_positions:
        tokenizer.model_max_length = int(max_positions)


def convert_gguf(
    gguf_path: Path, out_dir: Path, *, eos_token: str | None = None, pad_token: str | None = None
) -> dict[str, Any]:
    """Write `gguf_path` as a Hugging Face directory into `out_dir`; return facts for the cache marker."""
    gguf_model, tokenizer = load_gguf(gguf_path)
    model = dequantized_copy(gguf_model)
    del gguf_model
    fix_special_tokens(
        tokenizer, model.config, model.generation_config, eos_token=eos_token, pad_token=pad_token
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return {
        "gguf_file": gguf_path.name,
        "dtype": "float32",
        "parameters": sum(p.numel() for p in model.parameters()),
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
