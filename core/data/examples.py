"""Training examples and the schema of one JSONL record.

Two record formats, one per file (OpenAI fine-tuning style):

- chat: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``,
  with at least one assistant turn; the loss is on the assistant turns;
- prompt/completion: ``{"prompt": str, "completion": str}``; the loss is on the completion.

Keys other than these are ignored, so records exported with extra metadata still load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias, cast

Role: TypeAlias = Literal["system", "user", "assistant"]
DataFormat: TypeAlias = Literal["chat", "prompt_completion"]

ROLES: tuple[Role, ...] = ("system", "user", "assistant")
FORMAT_NAMES: dict[DataFormat, str] = {"chat": "chat", "prompt_completion": "prompt/completion"}


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class ChatExample:
    """A conversation; ``line`` is its 1-based line in the source file (0 when built in code)."""

    messages: tuple[Message, ...]
    line: int = 0

    format: ClassVar[DataFormat] = "chat"

    def as_dicts(self) -> list[dict[str, str]]:
        """The messages in the shape ``tokenizer.apply_chat_template`` expects."""
        return [{"role": m.role, "content": m.content} for m in self.messages]


@dataclass(frozen=True)
class PromptCompletionExample:
    """A prompt and the completion to learn; ``line`` as in :class:`ChatExample`."""

    prompt: str
    completion: str
    line: int = 0

    format: ClassVar[DataFormat] = "prompt_completion"

    def as_chat(self) -> ChatExample:
        """The same example as a user turn followed by an assistant turn."""
        messages = (Message("user", self.prompt), Message("assistant", self.completion))
        return ChatExample(messages, self.line)


Example: TypeAlias = ChatExample | PromptCompletionExample

# (field, message) pairs; the validator adds the line number.
FieldProblems: TypeAlias = list[tuple[str | None, str]]


def parse_record(record: object, line: int = 0) -> tuple[Example | None, FieldProblems]:
    """Check one decoded JSON value; return the example, or None and every problem found in it."""
    if not isinstance(record, dict):
        return None, [(None, f"expected a JSON object, got {_json_type(record)}")]
    is_chat = "messages" in record
    is_prompt_completion = "prompt" in record or "completion" in record
    if is_chat and is_prompt_completion:
        return None, [
            (None, "has both 'messages' (chat) and 'prompt'/'completion' fields; use one format per example")
        ]
    if is_chat:
        return _parse_chat(record["messages"], line)
    if is_prompt_completion:
        return _parse_prompt_completion(record, line)
    keys = ", ".join(repr(k) for k in list(record)[:5]) or "none"
    return None, [
        (
            None,
            "missing field: expected 'messages' (chat) or 'prompt' and 'completion' "
            f"(prompt/completion); found keys: {keys}",
        )
    ]


def _parse_prompt_completion(record: dict[str, object], line: int) -> tuple[Example | None, FieldProblems]:
    problems: FieldProblems = []
    texts = {name: _check_text(record, name, name, problems) for name in ("prompt", "completion")}
    if problems:
        return None, problems
    return PromptCompletionExample(str(texts["prompt"]), str(texts["completion"]), line), []


def _parse_chat(messages: object, line: int) -> tuple[Example | None, FieldProblems]:
    if not isinstance(messages, list):
        return None, [("messages", f"expected a list of messages, got {_json_type(messages)}")]
    if not messages:
        return None, [("messages", "empty list: a conversation needs at least one assistant turn")]
    problems: FieldProblems = []
    parsed: list[Message] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.append(
                (where, f"expected an object with 'role' and 'content', got {_json_type(message)}")
            )
            continue
        role = message.get("role")
        if "role" not in message:
            problems.append((f"{where}.role", "missing field"))
        elif not isinstance(role, str):
            problems.append((f"{where}.role", f"expected a string, got {_json_type(role)}"))
        elif role not in ROLES:
            problems.append((f"{where}.role", f"unknown role {role!r}; expected one of {', '.join(ROLES)}"))
        content = _check_text(message, "content", f"{where}.content", problems)
        if role in ROLES and content is not None:
            parsed.append(Message(cast(Role, role), content))
    if not problems and not any(m.role == "assistant" for m in parsed):
        problems.append(("messages", "no assistant turn: nothing to learn from this conversation"))
    if problems:
        return None, problems
    return ChatExample(tuple(parsed), line), []


def _check_text(record: dict[str, object], key: str, where: str, problems: FieldProblems) -> str | None:
    """Return ``record[key]`` if it is a non-blank string, else record why not."""
    if key not in record:
        problems.append((where, "missing field"))
        return None
    value = record[key]
    if not isinstance(value, str):
        problems.append((where, f"expected a string, got {_json_type(value)}"))
        return None
    if not value.strip():
        problems.append((where, "empty content"))
        return None
    return value


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
