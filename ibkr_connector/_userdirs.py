"""Where a user's files live: the runtime directory (sockets) and the state directory (audit).

Both control sockets (the runtime's and the simulator's) sit in one per-user runtime
directory, and it is checked in one place: in a shared ``/tmp`` anyone could have made it
first, so a symlinked or foreign directory is refused rather than used.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["ensure_directory", "runtime_dir", "state_dir"]

# Where the runtime directory goes when there is no (absolute) XDG_RUNTIME_DIR.
DEFAULT_FALLBACK_BASE = Path("/tmp")


def runtime_dir(fallback_base: Path = DEFAULT_FALLBACK_BASE) -> Path:
    """``$XDG_RUNTIME_DIR/ibkr-connector``, else ``<fallback_base>/ibkr-connector-<uid>``.

    Only computes the path; `ensure_directory(..., private=True)` makes it safe to use.
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg):  # the XDG spec ignores relative paths
        return Path(xdg) / "ibkr-connector"
    return fallback_base / f"ibkr-connector-{os.getuid()}"


def state_dir() -> Path:
    """``$XDG_STATE_HOME/ibkr-connector`` (``~/.local/state/ibkr-connector`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ibkr-connector"


def ensure_directory(directory: Path, *, private: bool) -> None:
    """Create *directory* (mode 0700) if it is missing.

    With ``private``, it must also be a real directory owned by this user (not a symlink),
    and its mode is tightened to 0700. Raises ``OSError`` with a message saying why not.
    """
    try:
        directory.mkdir(mode=0o700, parents=True)
        created = True
    except FileExistsError:
        created = False
    if created:
        os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask
    if not private:
        return
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"{directory} is not a directory (a symlink?); refusing to "
                                 "use it")
    if info.st_uid != os.getuid():
        raise PermissionError(f"{directory} belongs to uid {info.st_uid}, not to uid "
                              f"{os.getuid()}; refusing to use it")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(directory, 0o700)
