"""Files only the service's own user may read: SQLite databases that hold tokens, flows and users' data.

A database SQLite creates itself gets the process umask's mode, typically 0644: readable by every local
user. `create_private_file` creates it first, 0600 from the start (os.open with that mode, so it is never
briefly readable), in a directory created 0700, and tightens a file an earlier version left readable.
SQLite creates its -wal, -shm and -journal files with the database file's permissions, so they follow.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["PRIVATE_FILE_MODE", "create_private_file"]

PRIVATE_FILE_MODE = 0o600
_PRIVATE_DIRECTORY_MODE = 0o700


def create_private_file(path: Path) -> None:
    """Make `path` exist as a regular file with mode 0600 (its new parent directories 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=_PRIVATE_DIRECTORY_MODE)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ValueError(f"{path} is not a regular file")
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
    finally:
        os.close(descriptor)
