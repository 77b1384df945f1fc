"""Reading spec files and turning validation errors into messages for people."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

Spec = TypeVar("Spec", bound=BaseModel)

_HYPERPARAMETER = re.compile(r"Invalid (\w+): ")


class SpecError(ValueError):
    """A spec that cannot be used; ``problems`` lists ``field.path: what is wrong``."""

    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"{source}: invalid spec\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


def describe(error: ValidationError) -> list[str]:
    """One line per problem: the field path, what is wrong, what is allowed."""
    lines = []
    for problem in error.errors():
        path = [str(part) for part in problem["loc"]]
        message = str(problem["msg"]).removeprefix("Value error, ")
        named = _HYPERPARAMETER.match(message)
        if named and path and path[-1] == "optimizer":
            path.append(named.group(1))
        lines.append(f"{'.'.join(path) or '(spec)'}: {message}")
    return lines


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: ``1e-06`` (as JSON writes it) is a
    number, not the string YAML 1.1 makes of an exponent without a dot."""


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse YAML safely (no Python objects), with YAML 1.2 floats."""
    return yaml.load(text, Loader=_SpecLoader)


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path``, or a SpecError saying why not."""
    try:
        data = load_yaml(path.read_text())
    except OSError as error:
        raise SpecError(str(path), [f"cannot read the file ({error.strerror})"]) from error
    except yaml.YAMLError as error:
        raise SpecError(str(path), [f"not valid YAML ({error})"]) from error
    if not isinstance(data, dict):
        raise SpecError(str(path), ["the spec must be a YAML mapping of fields"])
    return data


def parse(model: type[Spec], data: dict[str, Any], source: str) -> Spec:
    """Validate ``data`` as ``model``; a SpecError lists every problem with its field path."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise SpecError(source, describe(error)) from error


def validation_error(title: str, problems: list[tuple[tuple[str | int, ...], str]]
                     ) -> ValidationError:
    """A ValidationError with one entry per ``(field path, message)`` problem, repeats dropped.

    Raised from a validator, its paths are taken as relative to the field being validated
    (pydantic prefixes them), so a check across fields can name each field it blames.
    """
    unique = list(dict.fromkeys(problems))
    return ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError("spec", "{message}", {"message": message}),
                         loc=loc, input=None)
        for loc, message in unique])
