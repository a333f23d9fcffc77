"""Keeps None, True and False alive under PySide6 6.12.0 on Python 3.11.

Why: with that PySide6/shiboken build every call of a Qt method that returns void (or bool) drops
one reference to None (or True/False) that it never took — measured here: `label.setToolTip("x")`
lowers `sys.getrefcount(None)` by one. A studio makes tens of thousands of such calls a minute, so
after a while CPython aborts with "none_dealloc: deallocating None". Python 3.12+ made these
singletons immortal, so the bug is harmless there; on older versions we do what 3.12 does: give
them a reference count so high that no session can drain it. Nothing else is touched.
"""

from __future__ import annotations

import ctypes
import platform
import sys

_HEADROOM = 1 << 40  # a trillion dropped references


def make_singletons_immortal() -> bool:
    """Raise the refcount of None/True/False once per process; a no-op on 3.12+ and non-CPython."""
    if sys.version_info >= (3, 12) or platform.python_implementation() != "CPython":
        return False
    if getattr(sys, "_recast_singletons_immortal", False):
        return True
    for obj in (None, True, False):
        # ob_refcnt is the first field of every CPython object; the GIL is held here
        ctypes.c_ssize_t.from_address(id(obj)).value += _HEADROOM
    sys._recast_singletons_immortal = True
    return True
