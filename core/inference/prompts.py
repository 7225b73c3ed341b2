"""From a request to checked prompt token ids, in the caller's thread (errors name the field)."""

from __future__ import annotations

import threading
from typing import Any

from torch import nn

from core.inference.requests import GenerationRequest
from core.inference.weights import target_features


class PromptEncoder:
    """Tokenizes requests for one model and checks them against it before they are queued."""

    def __init__(self, model: nn.Module, tokenizer: Any, max_choices: int) -> None:
        self.tokenizer = tokenizer
        self.max_choices = max_choices
        self.vocab = model.get_input_embeddings().num_embeddings  # type: ignore[operator]  # a transformers model
        self.context_length: int | None = getattr(model.config, "max_position_embeddings", None)
        self.modules = {name for name, module in model.named_modules() if name and _targetable(module)}
        self._lock = threading.Lock()  # a fast tokenizer is not safe to call from threads at once

    def encode(self, request: GenerationRequest) -> list[int]:
        """The prompt's token ids (chat messages through the chat template); raises `ValueError`."""
        if request.prompt_ids is not None:
            ids = [int(t) for t in request.prompt_ids]
        else:
            with self._lock:
                if request.messages is not None:
                    text = self.tokenizer.apply_chat_template(
                        [dict(m) for m in request.messages], tokenize=False, add_generation_prompt=True
                    )
                    ids = self.tokenizer(text, add_special_tokens=False).input_ids
                else:
                    ids = self.tokenizer(request.prompt).input_ids
        if not ids:
            raise ValueError("prompt: tokenizes to no tokens")
        if max(ids) >= self.vocab:
            raise ValueError(f"prompt_ids: token id {max(ids)} is outside the vocabulary ({self.vocab})")
        self._check(request, len(ids))
        return ids

    def _check(self, request: GenerationRequest, prompt_tokens: int) -> None:
        if request.n > self.max_choices:
            raise ValueError(f"n: at most max_batch_size ({self.max_choices}) choices, got {request.n}")
        if self.context_length is not None and prompt_tokens + request.max_tokens > self.context_length:
            raise ValueError(
                f"max_tokens: the prompt ({prompt_tokens} tokens) plus max_tokens ({request.max_tokens}) "
                f"exceeds the model's context of {self.context_length} tokens"
            )
        routing = request.return_routing
        if routing is not None:
            if request.adapter_key is None:
                raise ValueError("return_routing: the base model has no routers; name an adapter")
            if routing != "all" and routing not in self.modules:
                raise ValueError(f"return_routing: the model has no linear module {routing!r}")


def eos_ids(tokenizer: Any, model: nn.Module) -> set[int]:
    """Every token that ends a sequence: the tokenizer's EOS and the generation config's."""
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    for value in (tokenizer.eos_token_id, getattr(config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    if not ids:
        raise ValueError("model: the tokenizer and generation config name no EOS token")
    return ids


def _targetable(module: nn.Module) -> bool:
    try:
        target_features(module)
    except TypeError:
        return False
    return True
