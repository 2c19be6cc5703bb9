"""Folders only this user can enter, for what other users of the machine must not read or touch:
the warehouse's lock files and the connector's temporary files (its resolved config holds secrets)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path


class UnsafeFolderError(RuntimeError):
    """A folder meant to be private that another user owns or can enter."""


def private_dir(purpose: str) -> Path:
    """``<tmp>/elt-<purpose>-<uid>``, created 0700; refused if another user owns it or can enter it."""
    path = Path(tempfile.gettempdir()) / f"elt-{purpose}-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()  # not followed: a symlink planted there is refused below
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise UnsafeFolderError(
            f"{path} is not a private folder of this user (owner uid {info.st_uid}, mode {oct(info.st_mode & 0o777)}). "
            f"Fix: remove it (another user may have created it), or set TMPDIR to a folder only this user can enter."
        )
    return path


def task_dir(purpose: str) -> Path:
    """A new private folder for one task's process, named after its pid; leftovers of dead processes go first."""
    parent = private_dir(purpose)
    remove_leftovers(parent)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=parent))


def remove_leftovers(parent: Path) -> list[Path]:
    """Remove the folders of processes that no longer run (killed before they could clean up)."""
    removed = []
    for child in parent.iterdir():
        pid = child.name.partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
