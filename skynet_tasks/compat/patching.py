"""One patch of a third-party library: the version range it was written for, installed once, undone for tests.

A patch replaces attributes of a library with ``unittest.mock.patch.object`` (which knows how to
put back a class's own attribute, an inherited one, a static or class method), all held in one
``ExitStack``: ``uninstall()`` closes it and the library is as it was.

A patch of a module that is costly to import and often unused (``on_import``) waits for that module:
installing it before then arms it, and it is applied as the module's import ends (``wrapt``'s
post-import hooks), before anything can use what it patches. moto's server imports a service's code
at the service's first request; importing SSM's or CloudFormation's code to patch it at every start
cost 2 s of CPU, and most starts (each test's AWS) never use either.
"""

from __future__ import annotations

import sys
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

    ``apply`` makes the change, registering each replacement on the stack it is given. ``on_import``: the
    module it patches, if the patch must wait for it to be imported (see the module's docstring).
    """

    name: str
    library: str
    supported: str
    apply: Callable[[ExitStack], None]
    on_import: str = ""
    _undo: ExitStack | None = field(default=None, init=False, repr=False)
    _armed: bool = field(default=False, init=False, repr=False)
    _hooked: bool = field(default=False, init=False, repr=False)
    # Re-entrant: wrapt runs the hook at once, in ``install``, if the module was imported meanwhile.
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

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

    @property
    def armed(self) -> bool:
        """Whether the patch is installed: in effect, or to be applied once its ``on_import`` module is imported."""
        return self._armed

    def install(self) -> None:
        """Apply the patch, once (or arm it until its module is imported); refuses a library version outside
        the supported range."""
        with self._lock:
            if self._armed:
                return
            self.check_version()
            self._armed = True
            if self.on_import and self.on_import not in sys.modules:
                if not self._hooked:
                    import wrapt  # only the local AWS's patches wait for a module

                    wrapt.register_post_import_hook(self._imported, self.on_import)
                    self._hooked = True
                return
            try:
                self._apply_now()
            except BaseException:
                self._armed = False
                raise

    def _imported(self, _module: Any) -> None:
        with self._lock:
            if self._armed and self._undo is None:
                self._apply_now()

    def _apply_now(self) -> None:  # (called with the lock held)
        stack = ExitStack()
        try:
            self.apply(stack)
        except BaseException:
            stack.close()  # a patch half applied is undone
            raise
        self._undo = stack

    def uninstall(self) -> None:
        """Put the library's originals back (or disarm it); nothing if the patch is not installed."""
        with self._lock:
            undo, self._undo, self._armed = self._undo, None, False
        if undo is not None:
            undo.close()

    @contextmanager
    def applied(self) -> Iterator[Patch]:
        """The patch installed for a ``with`` block (a test's), then uninstalled if the block installed it."""
        was_installed = self.armed
        self.install()
        try:
            yield self
        finally:
            if not was_installed:
                self.uninstall()
