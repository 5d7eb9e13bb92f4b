"""The vocabulary of a search space: one searchable choice (:class:`Dimension`), the sampler's callback
(:class:`SuggestFn`) and the error an invalid space file raises (:class:`SpaceError`).

Both halves of a space use it: :mod:`space.spaceyaml` builds the dimensions from a YAML file and
:mod:`space.searchspace` samples and enumerates them. Keeping it apart lets each import it without
importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from space.errors import UserInputError

# Depths built from Simple blocks (no bottleneck expansion, fewer SRTG placements); 50+ are Bottleneck.
SIMPLE_DEPTHS = (18, 34)


class SpaceError(UserInputError):
    """An invalid search-space file; the message starts with ``file:line:``."""


class SuggestFn(Protocol):
    """Pick one of ``choices`` for the parameter ``name`` (e.g. a closure over ``suggest_categorical``).

    ``choices`` holds only None, bool, int, float or str (what Optuna's categorical distribution
    accepts); the same ``name`` is always offered the same ``choices``.
    """

    def __call__(self, name: str, choices: list) -> Any: ...


@dataclass(frozen=True)
class Dimension:
    """One searchable choice: its sampler parameter name, its values, and when it is sampled.

    A dimension with a single choice is fixed: it is applied without calling the sampler.
    """

    name: str  # the sampler's parameter name, e.g. "resnet3d.srtg.gate"
    choices: tuple  # spec values (canonical: ratio 1 -> 1.0, stages [2, 1] -> (1, 2))
    when: str = ""  # human-readable condition within its family, "" = always
    line: int | None = None  # line in the space file that listed it

    @property
    def fixed(self) -> bool:
        return len(self.choices) == 1

    def encoded_choices(self) -> list:
        """The choices as the sampler sees them (tuples, i.e. SRTG ``stages``, become "1,2,3,4")."""
        return [encode_choice(c) for c in self.choices]

    def decode(self, value: Any) -> Any:
        for choice in self.choices:
            if encode_choice(choice) == value:  # equality, so an enqueued 0 still means align_loss 0.0
                return choice
        raise SpaceError(f"sampler returned {value!r} for {self.name}; allowed: {self.encoded_choices()}")


def encode_choice(value: Any) -> Any:
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value
