"""Text out of generated tokens: incremental detokenization and stop strings.

`IncrementalDecoder` is the prefix-window scheme of Hugging Face's text-generation-inference
(also vLLM's): decode the tokens since a prefix offset, emit what is new since the read offset,
and hold text back while it ends in U+FFFD, i.e. a UTF-8 character split across byte-level
tokens. Decoding from a little before the new tokens keeps tokenizers that drop a word's
leading space at the start of a decode (SentencePiece) right.

`StopMatcher` cuts the text at the first stop string and, while streaming, holds back a tail
that could still become one, so a client never sees part of a stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class IncrementalDecoder:
    """Text deltas of a growing token sequence; the deltas concatenate to the full decode."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def _decode(self, ids: Sequence[int]) -> str:
        text: str = self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return text

    def push(self, token: int) -> str:
        """Add one token; returns the text it completes (maybe "", held back until complete)."""
        self.ids.append(token)
        prefix_text = self._decode(self.ids[self.prefix_offset : self.read_offset])
        new_text = self._decode(self.ids[self.prefix_offset :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return new_text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        """The text still held back (at the end of a sequence, even an incomplete character)."""
        prefix_text = self._decode(self.ids[self.prefix_offset : self.read_offset])
        new_text = self._decode(self.ids[self.prefix_offset :])
        self.prefix_offset = self.read_offset = len(self.ids)
        return new_text[len(prefix_text) :] if len(new_text) > len(prefix_text) else ""


class StopMatcher:
    """Accumulates text, cuts it at the earliest stop string, releases only safe text."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.text = ""
        self.emitted = 0

    def push(self, delta: str) -> tuple[str, bool]:
        """Add `delta`; returns (text safe to emit now, whether a stop string ended the text)."""
        self.text += delta
        # Text before `emitted` cannot start a stop string: it was released as no stop's prefix.
        hits = [i for i in (self.text.find(s, self.emitted) for s in self.stops) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            return self.flush(), True
        safe = len(self.text) - self._pending_prefix()
        out = self.text[self.emitted : safe]
        self.emitted = safe
        return out, False

    def flush(self) -> str:
        """Everything not yet emitted (the sequence has ended)."""
        out = self.text[self.emitted :]
        self.emitted = len(self.text)
        return out

    def _pending_prefix(self) -> int:
        """Length of the longest tail of the unreleased text that is a proper prefix of a stop."""
        tail = self.text[self.emitted :]
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(tail)), best, -1):
                if tail.endswith(stop[:n]):
                    best = n
                    break
        return best
