"""The double: a named set of patches on moto's classes, a context manager undone on exit.

Stands for no AWS behaviour itself; every service module beside it builds its doubles on
``Double`` and ``wrapped`` (replace a moto method by a wrapper of the original, read when the
double is entered). Patches go on moto's backend and response *classes*, never on botocore, so
one patch holds both in process (``mock_aws``) and behind a ``ThreadedMotoServer``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from unittest.mock import patch

if TYPE_CHECKING:
    pass


Wrapper = Callable[..., Any]


class Double:
    """A named set of patches on moto's classes; a context manager, undone on exit.

    Doubles that patch the same moto method (SseCustomerKeys and DefaultBucketEncryption
    both wrap ``S3Backend.put_object``) compose in either order, but must be left in the
    reverse order of entering (``with`` and ``aws_behaviour()`` do that).
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._stack: contextlib.ExitStack | None = None

    def _patches(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        with self._guard:
            if self._stack is not None:
                raise RuntimeError(f"{type(self).__name__} is already active")
            with contextlib.ExitStack() as stack:
                for patcher in self._patches():
                    stack.enter_context(patcher)
                self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._guard:
            stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()


@contextlib.contextmanager
def wrapped(cls: type[Any], name: str, make: Callable[[Wrapper], Wrapper]) -> Iterator[None]:
    """Replace ``cls.name`` by ``make(original)``; the original is read when entered."""
    original = getattr(cls, name)
    with patch.object(cls, name, functools.wraps(original)(make(original))):
        yield
