"""The cost model of a run: what a step costs in tokens and FLOPs, from the run metadata's batch
and model size.

``tokens = steps * tokens_per_step`` and ``flops = 6 * n_params * tokens``. It converts budgets
between steps, tokens and FLOPs for :mod:`fitting.plan`'s questions; it predicts nothing.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fitting.errors import InvalidInput, finite_number

__all__ = ["TrainingScale", "parse_model_size"]


@dataclass(frozen=True)
class TrainingScale:
    """What a step costs: tokens per step and model size, when the run metadata gives them.

    ``tokens = steps * tokens_per_step`` and ``flops = 6 * n_params * tokens`` (the usual
    forward-and-backward estimate for a dense transformer).

    Example:
      >>> TrainingScale(tokens_per_step=524288, n_params=4e8).cost(24000)["flops"]
      3.01989888e+19
    """

    tokens_per_step: float | None = None
    n_params: float | None = None

    def __post_init__(self):
        for name in ("tokens_per_step", "n_params"):
            value = getattr(self, name)
            if value is not None:
                value = finite_number(name, value)
                if value <= 0:
                    raise InvalidInput(f"{name} must be > 0, got {name}={value}")
                object.__setattr__(self, name, value)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> TrainingScale:
        """From run metadata: ``tokens_per_step``, and ``n_params`` (or ``model_size``, a number
        or a string such as ``"400M"`` or ``"1.3B"``). Absent or unreadable keys stay unknown.

        >>> TrainingScale.from_metadata({"model_size": "25M", "tokens_per_step": 524288})
        TrainingScale(tokens_per_step=524288.0, n_params=25000000.0)
        """
        metadata = metadata or {}
        tokens = metadata.get("tokens_per_step")
        size = metadata.get("n_params", metadata.get("model_size"))
        return cls(_positive_or_none(tokens), _positive_or_none(parse_model_size(size)))

    @property
    def known(self) -> bool:
        return self.tokens_per_step is not None

    def cost(self, steps: int) -> dict[str, float | int | None]:
        """``{"steps", "tokens", "flops"}`` of a run of ``steps`` updates (None: unknown)."""
        tokens = None if self.tokens_per_step is None else float(steps) * self.tokens_per_step
        flops = None if tokens is None or self.n_params is None else 6.0 * self.n_params * tokens
        return {"steps": int(steps), "tokens": tokens, "flops": flops}

    def steps_for(self, *, tokens: float | None = None, flops: float | None = None) -> int:
        """The number of steps (rounded up) that ``tokens`` or ``flops`` pay for."""
        if (tokens is None) == (flops is None):
            raise InvalidInput("give exactly one of tokens or flops")
        if self.tokens_per_step is None:
            raise InvalidInput("a budget in tokens or FLOPs needs tokens_per_step")
        if flops is not None:
            if self.n_params is None:
                raise InvalidInput("a budget in FLOPs needs n_params (the model size)")
            tokens = finite_number("flops", flops) / (6.0 * self.n_params)
        tokens = finite_number("tokens", tokens)
        if tokens <= 0:
            raise InvalidInput(f"the budget must be positive, got {tokens} tokens")
        # A budget that is a whole number of steps up to rounding is that number of steps.
        return max(1, math.ceil(tokens / self.tokens_per_step * (1 - 1e-12)))


_SIZE_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_model_size(value: Any) -> float | None:
    """``400M`` -> 4e8, ``1.3B`` -> 1.3e9, a number -> itself; None when unreadable.

    >>> parse_model_size("1.3B"), parse_model_size("25M"), parse_model_size(7e9)
    (1300000000.0, 25000000.0, 7000000000.0)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("params").strip()
        factor = _SIZE_SUFFIXES.get(text[-1:], None)
        try:
            return float(text[:-1]) * factor if factor else float(text)
        except ValueError:
            return None
    return None


def _positive_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None
