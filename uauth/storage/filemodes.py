"""Owner-only files and folders: every file uauth writes is 0600, every folder it creates 0700.

The instance folder may already exist with a loose mode (an operator's, or an older checkout's), so
files are created with an explicit mode rather than relying on the folder or the umask. What
already exists is left alone, but :func:`warn_if_exposed` says at start-up when the folder or a
file in it can be read by other local accounts (argon2 hashes, profiles, the session secret).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("uauth.instance")

FILE_MODE = 0o600
DIR_MODE = 0o700
#: Group or world may read (or, for a folder, list) it.
_READABLE_BY_OTHERS = stat.S_IRGRP | stat.S_IROTH


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True if this call created it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.fchmod(fd, FILE_MODE)  # whatever the umask did
    os.close(fd)
    return True


def write_private_file(path: Path, text: str) -> None:
    """Write a new file with mode 0600; refuses to overwrite (``FileExistsError``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def make_private_dir(path: Path) -> bool:
    """Create ``path`` and any missing parents with mode 0700; True if ``path`` was created."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another worker made it first; it made it 0700 too
        os.chmod(folder, DIR_MODE)
    return bool(missing)


def exposed(paths: Iterable[Path]) -> list[Path]:
    """The paths that exist and that group or others may read."""
    found = []
    for path in paths:
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & _READABLE_BY_OTHERS:
            found.append(path)
    return found


def warn_if_exposed(folder: Path, files: Iterable[Path] = ()) -> list[Path]:
    """Log a warning for the folder and each file in it (plus ``files``) others may read."""
    candidates = [folder, *sorted(p for p in folder.iterdir()
                                  if p.is_file() and not p.name.endswith(".example.py"))] \
        if folder.is_dir() else []
    candidates += [p for p in files if p not in candidates]
    found = exposed(candidates)
    for path in found:
        mode = stat.S_IMODE(path.stat().st_mode)
        log.warning("%s is readable by other local accounts (mode %o); run chmod %s %s",
                    path, mode, "700" if path.is_dir() else "600", path)
    return found
