"""Function-minimisation tasks: an optimizer moves a point x to the minimiser of F(x)."""

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class FunctionTask:
    """Minimise ``objective(x)`` over ``x`` of length ``dimension`` from ``start``.

    ``minimum`` is F at the global minimiser ``minimiser``. ``objective`` maps ``[..., d]``
    to ``[...]`` (a population ``[K, d]`` gives ``[K]``) and is differentiable by autograd.
    """

    name: str
    dimension: int
    start: tuple[float, ...]
    minimum: float
    minimiser: tuple[float, ...]
    description: str
    formula: Callable[[Tensor], Tensor] = field(repr=False, compare=False)

    def objective(self, x: Tensor) -> Tensor:
        """F(x) for every point along the leading dimensions of ``x``."""
        if x.dim() == 0 or x.shape[-1] != self.dimension:
            raise ValueError(f"Task {self.name!r} takes points of dimension {self.dimension} "
                             f"in the last axis, got shape {tuple(x.shape)}")
        return self.formula(x)


def _quadratic(x: Tensor) -> Tensor:
    x1, x2 = x[..., 0], x[..., 1]
    return x1**2 + 2 * x1 * x2 + 2 * x2**2 + x1


def _rosenbrock(x: Tensor) -> Tensor:
    x1, x2 = x[..., 0], x[..., 1]
    return (1 - x1) ** 2 + 100 * (x2 - x1**2) ** 2


def quadratic() -> FunctionTask:
    """The lecture's steepest-descent example.

    F(x) = x₁² + 2x₁x₂ + 2x₂² + x₁, ∇F = (2x₁ + 2x₂ + 1, 2x₁ + 4x₂), Hessian [[2, 2], [2, 4]]
    (positive definite), so the unique minimiser solves ∇F = 0: x* = (−1, 0.5), F(x*) = −0.5.
    Start x₀ = (0.5, 0.5), where ∇F = (3, 3).
    """
    return FunctionTask(
        name="quadratic",
        dimension=2,
        start=(0.5, 0.5),
        minimum=-0.5,
        minimiser=(-1.0, 0.5),
        description="F(x) = x1^2 + 2 x1 x2 + 2 x2^2 + x1 from (0.5, 0.5) (the lecture's "
                    "steepest-descent example)",
        formula=_quadratic,
    )


def rosenbrock() -> FunctionTask:
    """Rosenbrock's banana valley f(x, y) = (1 − x)² + 100(y − x²)², minimum 0 at (1, 1)."""
    return FunctionTask(
        name="rosenbrock",
        dimension=2,
        start=(-1.2, 1.0),
        minimum=0.0,
        minimiser=(1.0, 1.0),
        description="Rosenbrock f(x, y) = (1 - x)^2 + 100 (y - x^2)^2 from (-1.2, 1) "
                    "(Rosenbrock 1960)",
        formula=_rosenbrock,
    )
