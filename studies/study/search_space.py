"""What Optuna may search for an arm: float ranges, int ranges and choices.

A spec writes ``lr: {low: 0.001, high: 1, log: true}`` (a float range),
``hidden: {type: int, low: 2, high: 8, step: 2}`` (an int range) or
``variant: {choices: [iRprop+, iRprop-]}`` (a categorical choice). Each knows the Optuna
distribution it becomes, the values a sampler may draw at its extremes (the values the
search-space constraints are checked at), its low end, and whether a value lies in it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    field_validator,
    model_validator,
)

Loc = tuple[str | int, ...]
"""A field path inside a spec, as pydantic writes it: ``("search", "lr", "high")``."""

ChoiceValue = None | bool | int | float | str
"""A value an Optuna categorical distribution can hold."""

_STRICT = ConfigDict(extra="forbid", frozen=True)
_FORMS = ("{low, high[, log]} (a float range), {type: int, low, high[, step, log]} (an int "
          "range) or {choices: [...]}")


class FloatRange(BaseModel):
    """A float in [low, high], drawn uniformly, or log-uniformly with ``log: true``."""

    model_config = _STRICT
    type: Literal["float"] = "float"
    low: FiniteFloat
    high: FiniteFloat
    log: bool = False

    @model_validator(mode="after")
    def _valid(self) -> FloatRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got low {self.low}")
        return self

    def distribution(self) -> BaseDistribution:
        return FloatDistribution(self.low, self.high, log=self.log)

    def extremes(self) -> list[tuple[Loc, Any]]:
        """The values a sampler may draw at the range's ends, each with its field path."""
        return [(("low",), self.low), (("high",), self.high)]

    def lowest(self) -> Any:
        return self.low

    def contains(self, value: object) -> bool:
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and self.low <= value <= self.high)

    def allowed(self) -> str:
        return f"a number in [{self.low}, {self.high}]"

    def grid(self) -> list[Any] | None:
        """The values of a grid search: none, a float range cannot be gridded."""
        return None


class IntRange(BaseModel):
    """An integer in low, low + step, ..., high; ``log: true`` (step 1 only) draws it
    log-uniformly."""

    model_config = _STRICT
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _valid(self) -> IntRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got low {self.low}")
        if self.log and self.step != 1:
            raise ValueError(f"log: true needs step 1, got step {self.step}")
        if (self.high - self.low) % self.step:
            raise ValueError(f"high - low ({self.high - self.low}) must be a multiple of step "
                             f"({self.step})")
        return self

    def distribution(self) -> BaseDistribution:
        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def extremes(self) -> list[tuple[Loc, Any]]:
        """The values a sampler may draw at the range's ends, each with its field path."""
        return [(("low",), self.low), (("high",), self.high)]

    def lowest(self) -> Any:
        return self.low

    def contains(self, value: object) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool)
                and self.low <= value <= self.high and (value - self.low) % self.step == 0)

    def allowed(self) -> str:
        return f"an integer in {self.low}..{self.high} with step {self.step}"

    def grid(self) -> list[Any] | None:
        """The values of a grid search: every value of the range."""
        return list(range(self.low, self.high + 1, self.step))


class Choice(BaseModel):
    """One of ``choices`` (an Optuna categorical: numbers, strings, booleans or null)."""

    model_config = _STRICT
    choices: list[ChoiceValue]

    @field_validator("choices")
    @classmethod
    def _distinct(cls, value: list[ChoiceValue]) -> list[ChoiceValue]:
        if not value:
            raise ValueError("choices is empty (allowed: a list of at least one value)")
        for index, choice in enumerate(value):
            if any(_same(choice, earlier) for earlier in value[:index]):
                raise ValueError(f"choices repeat {choice!r} (allowed: distinct values)")
        return value

    def distribution(self) -> BaseDistribution:
        return CategoricalDistribution(self.choices)

    def extremes(self) -> list[tuple[Loc, Any]]:
        """Every choice (any may be drawn), each with its field path."""
        return [(("choices", index), choice) for index, choice in enumerate(self.choices)]

    def lowest(self) -> Any:
        return self.choices[0]

    def contains(self, value: object) -> bool:
        return any(_same(value, choice) for choice in self.choices)

    def allowed(self) -> str:
        return "one of " + ", ".join(repr(choice) for choice in self.choices)

    def grid(self) -> list[Any] | None:
        """The values of a grid search: every choice."""
        return list(self.choices)


def _same(first: object, second: object) -> bool:
    """Equal as choices: 1 and 1.0 are the same, True and 1 are not."""
    return isinstance(first, bool) == isinstance(second, bool) and first == second


def _as_search_param(value: object) -> FloatRange | IntRange | Choice:
    """Pick the form from the keys a user wrote, so errors name that form's fields."""
    if isinstance(value, FloatRange | IntRange | Choice):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not a search parameter (allowed: {_FORMS})")
    if "choices" in value:
        return Choice.model_validate(value)
    kind = value.get("type", "float")
    if kind == "int":
        return IntRange.model_validate(value)
    if kind == "float":
        return FloatRange.model_validate(value)
    raise ValueError(f"type {kind!r} is unknown (allowed: float, int; or {{choices: [...]}})")


SearchParam = Annotated[
    FloatRange | IntRange | Choice,
    BeforeValidator(_as_search_param),
]
"""A float range, an int range (``type: int``) or a choice (``choices``), told apart by keys."""
