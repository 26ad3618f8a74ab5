"""One base for the resources that ``with`` closes (outbox, store, device emulator)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Closing(ABC):
    """``with resource:`` hands the resource to the block and calls :meth:`close` after it,
    whether the block ends normally or by an exception (which is not suppressed)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the resource holds; calling it twice must be harmless."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
