"""Which runtime folder and token file a client may trust, and opening them safely (DESIGN.md §5).

Why: clients learn from the runtime folder which socket, TCP port and token file to use. Without
XDG_RUNTIME_DIR that folder is /tmp/recast-UID, which another user can create first and fill with
an engine.json that sends the user's media and token anywhere. So clients apply the daemon's own
rules: a real folder (not a link), owned by the user, mode 0700; token files opened without
following links, regular, owned by the user, in a folder others cannot write, and 0600 when they
are the daemon's own. The studio uses these too (desktop may import plugin_bridge, never engine).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from plugin_bridge.errors import PermissionDenied
from protos import token_file

FOLDER_FIX = "remove it, or set RECAST_RUNTIME_DIR or XDG_RUNTIME_DIR to a folder of your own"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class UntrustedPath(PermissionDenied):
    """A runtime folder, token file or log another user could have planted or can tamper with."""


def check_private_dir(path: Path, create: bool = False) -> bool:
    """True when `path` is a folder of this user with mode 0700; False when it does not exist.

    `create` makes a missing one (mode 0700) first. Anything else raises UntrustedPath naming the
    folder and the fix.
    """
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except FileExistsError:
            pass  # a dangling link or a file: the lstat below says which
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UntrustedPath(f"runtime folder {path} is a link or a file, not a folder; {FOLDER_FIX}")
    if st.st_uid != os.getuid():
        raise UntrustedPath(f"runtime folder {path} belongs to another user (uid {st.st_uid}); {FOLDER_FIX}")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise UntrustedPath(
            f"runtime folder {path} has mode {mode:o}, so others may have written into it; "
            f"chmod 700 {path} if you trust what it holds, or {FOLDER_FIX}"
        )
    return True


def read_token_file(path: Path, private: bool) -> str:
    """protos.token_file's reader, its refusals raised as UntrustedPath (PERMISSION_DENIED)."""
    try:
        return token_file.read_token_file(path, private)
    except token_file.UntrustedToken as exc:
        raise UntrustedPath(f"token_file: {exc}") from None


def open_log(path: Path) -> int:
    """An append-only descriptor on this user's log file (created 0600), never through a link."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC, 0o600)
    except OSError:
        if os.path.islink(path):
            raise UntrustedPath(f"log {path} is a symbolic link; remove it") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        os.close(fd)
        raise UntrustedPath(f"log {path} is not a regular file of yours; remove it")
    return fd
