"""The on-disk model cache: where it lives, and building an entry once across processes.

An entry is built in a temporary sibling directory and moved into place with `os.replace`,
so readers see either nothing or a complete directory; an exclusive `fcntl.flock` on a
per-entry lock file makes racing processes wait for the first builder instead of repeating it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CACHE_ENV = "MOETUNE_CACHE_DIR"
MARKER = "moetune.json"


def resolve_cache_dir(cache_dir: Path | str | None = None) -> Path:
    """The cache root: the argument, else `$MOETUNE_CACHE_DIR`, else `~/.cache/moetune`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "moetune"


def is_complete(entry: Path) -> bool:
    """An entry counts only once its marker exists; the marker is written last."""
    return (entry / MARKER).is_file()


def build_once(entry: Path, build: Callable[[Path], dict[str, Any]]) -> Path:
    """Return `entry`, first building it with `build(tmp_dir)` unless it is already complete.

    `build` fills the empty directory it is given and returns metadata for the marker file.
    A failed build leaves neither the entry nor its temporary directory behind.
    """
    if is_complete(entry):
        return entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(entry.with_name(entry.name + ".lock")):
        if is_complete(entry):
            return entry  # another process built it while we waited for the lock
        prefix = f".{entry.name}.partial-"
        # Holding the lock, any partial directory is left over from a killed builder.
        for stale in entry.parent.glob(prefix + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        if entry.exists():
            shutil.rmtree(entry)  # present but unmarked: not ours, or from an older layout
        # Same parent as the entry, so `os.replace` is a rename within one filesystem.
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=entry.parent))
        try:
            meta = build(tmp)
            (tmp / MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            _apply_umask_modes(tmp, file_mode=(tmp / MARKER).stat().st_mode & 0o777)
            os.replace(tmp, entry)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return entry


def _apply_umask_modes(root: Path, *, file_mode: int) -> None:
    # mkdtemp (and safetensors' temp files) create owner-only modes; an API and a worker running
    # as different users share this cache, so give everything the modes the umask would give.
    dir_mode = file_mode | ((file_mode & 0o444) >> 2)
    root.chmod(dir_mode)
    for path in root.rglob("*"):
        path.chmod(dir_mode if path.is_dir() else file_mode)


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    # The lock file is never deleted: unlinking it would let a late process lock a fresh inode.
    with path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
