"""Reading a bearer token file the way both ends of a TCP connection must (DESIGN.md §5).

The daemon writes the token and names the file in engine.json; clients read it. Both refuse a
file they could be tricked into trusting: a link (opened with O_NOFOLLOW), anything but a regular
file, another user's file, a file in a folder everyone may write, and, for the daemon's own token,
one others may read (checked on the open descriptor, so what is checked is what is read).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class UntrustedToken(Exception):
    """A token file that must not be trusted; the message names the file and why."""


def check_token_folder(path: Path) -> None:
    """UntrustedToken when the token file's folder lets everyone write (and so replace) it."""
    if os.stat(path.parent).st_mode & stat.S_IWOTH:
        raise UntrustedToken(f"token file {path} is in a folder everyone may write ({path.parent}); move it")


def read_token_file(path: Path, private: bool) -> str:
    """The first line of a token file ("" when it has none). `private`: the daemon's own, so 0600 too.

    Raises OSError when it cannot be opened or read, UntrustedToken when it must not be trusted.
    """
    check_token_folder(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC)  # NONBLOCK: a FIFO never hangs
    except OSError:
        if os.path.islink(path):
            raise UntrustedToken(f"token file {path} is a symbolic link; name the file itself") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UntrustedToken(f"token file {path} is not a regular file")
        if st.st_uid != os.getuid():
            raise UntrustedToken(f"token file {path} belongs to another user (uid {st.st_uid})")
        if private and stat.S_IMODE(st.st_mode) & 0o077:
            raise UntrustedToken(
                f"token file {path} has mode {stat.S_IMODE(st.st_mode):o}; it must be 0600 (chmod 600 {path})"
            )
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    lines = data.decode(errors="replace").strip().splitlines()
    return lines[0].strip() if lines else ""
