"""One patch of a third-party library: the version range it was written for, installed once, undone for tests.

A patch replaces attributes of a library with ``unittest.mock.patch.object`` (which knows how to
put back a class's own attribute, an inherited one, a static or class method), all held in one
``ExitStack``: ``uninstall()`` closes it and the library is as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any
from unittest import mock

from packaging.specifiers import SpecifierSet
from packaging.version import Version


class UnsupportedVersion(RuntimeError):
    """The installed library is outside the versions a patch was written for."""


def installed_version(library: str) -> Version:
    """The installed version of the distribution ``library`` (a seam for tests)."""
    return Version(version(library))


def replace(stack: ExitStack, target: Any, name: str, new: Any, create: bool = False) -> Any:
    """Set ``target.name`` to ``new`` until ``stack`` closes; return what was there (for the patch to call).

    ``create`` adds an attribute the library lacks (and then returns None); without it, a missing
    attribute is an error, as when an upgrade renamed what the patch replaces.
    """
    original = getattr(target, name, None) if create else getattr(target, name)
    stack.enter_context(mock.patch.object(target, name, new, create=create))
    return original


@dataclass
class Patch:
    """A named change to ``library``, valid for the versions in ``supported`` (a PEP 440 specifier set).

    ``apply`` makes the change, registering each replacement on the stack it is given.
    """

    name: str
    library: str
    supported: str
    apply: Callable[[ExitStack], None]
    _undo: ExitStack | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def installed(self) -> bool:
        """Whether the patch is in effect in this process."""
        return self._undo is not None

    def check_version(self) -> Version:
        """The installed version of the library; raises ``UnsupportedVersion`` outside ``supported``."""
        found = installed_version(self.library)
        if found not in SpecifierSet(self.supported):
            raise UnsupportedVersion(
                f"compat patch {self.name!r} was written for {self.library} {self.supported}, "
                f"but {self.library} {found} is installed: check whether {self.library} still needs it "
                f"(its 'still needed' test under tests/), then widen its range or delete it")
        return found

    def install(self) -> None:
        """Apply the patch, once; refuses a library version outside the supported range."""
        with self._lock:
            if self._undo is not None:
                return
            self.check_version()
            stack = ExitStack()
            try:
                self.apply(stack)
            except BaseException:
                stack.close()  # a patch half applied is undone
                raise
            self._undo = stack

    def uninstall(self) -> None:
        """Put the library's originals back; nothing if the patch is not installed."""
        with self._lock:
            undo, self._undo = self._undo, None
        if undo is not None:
            undo.close()

    @contextmanager
    def applied(self) -> Iterator[Patch]:
        """The patch installed for a ``with`` block (a test's), then uninstalled if the block installed it."""
        was_installed = self.installed
        self.install()
        try:
            yield self
        finally:
            if not was_installed:
                self.uninstall()
