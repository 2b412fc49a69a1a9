"""Typed operation parameters: each declared once, driving validation, JSON schema and docs.

A parameter parses a JSON value into the Python value an operation receives, or raises
`InvalidSpec` naming the exact path of the bad field (`operations[2].width`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from PIL import ImageColor

from shared.errors import InvalidSpec

__all__ = ["Bool", "Choice", "Color", "Float", "Int", "Param", "Ratio", "Text"]

_MISSING: Any = object()


@dataclass(frozen=True)
class Param:
    """Base parameter. `default=None` with `required=False` means "absent unless given"."""

    name: str
    description: str
    default: Any = None
    required: bool = False
    json_type: ClassVar[str] = "string"

    def parse(self, value: Any, path: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def required_copy(self) -> Param:
        """The same parameter, but required."""
        return dataclasses.replace(self, required=True)

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.json_type, "description": self.description}
        if self.default is not None:
            out["default"] = self.default
        return out

    def doc(self) -> str:
        """One line for the docs and CLI help: `width (integer 1-30000): ...`."""
        bits = [self.json_type]
        extra = self._range_text()
        if extra:
            bits.append(extra)
        text = f"{self.name} ({' '.join(bits)}"
        text += (
            ", required)"
            if self.required
            else (
                f", default {self._default_text()})" if self.default is not None else ", optional)"
            )
        )
        return f"{text}: {self.description}"

    def _range_text(self) -> str:
        return ""

    def _default_text(self) -> str:
        return str(self.default).lower() if isinstance(self.default, bool) else str(self.default)


def _type_error(path: str, expected: str, value: Any) -> InvalidSpec:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return InvalidSpec(f"expected {expected}, got {shown}", path=path)


@dataclass(frozen=True)
class Int(Param):
    minimum: int = 0
    maximum: int = 2**31 - 1
    json_type: ClassVar[str] = "integer"

    def parse(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(path, "an integer", value)
        if isinstance(value, float):
            if not value.is_integer():
                raise _type_error(path, "an integer", value)
            value = int(value)
        if not self.minimum <= value <= self.maximum:
            raise InvalidSpec(
                f"must be between {self.minimum} and {self.maximum}, got {value}", path=path
            )
        return int(value)

    def schema(self) -> dict[str, Any]:
        return {**super().schema(), "minimum": self.minimum, "maximum": self.maximum}

    def _range_text(self) -> str:
        return f"{self.minimum}-{self.maximum}"


@dataclass(frozen=True)
class Float(Param):
    minimum: float = 0.0
    maximum: float = 1e9
    json_type: ClassVar[str] = "number"

    def parse(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(path, "a number", value)
        number = float(value)
        if not math.isfinite(number) or not self.minimum <= number <= self.maximum:
            raise InvalidSpec(
                f"must be between {self.minimum:g} and {self.maximum:g}, got {number:g}", path=path
            )
        return number

    def schema(self) -> dict[str, Any]:
        return {**super().schema(), "minimum": self.minimum, "maximum": self.maximum}

    def _range_text(self) -> str:
        return f"{self.minimum:g}-{self.maximum:g}"


@dataclass(frozen=True)
class Bool(Param):
    json_type: ClassVar[str] = "boolean"

    def parse(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise _type_error(path, "true or false", value)
        return value


@dataclass(frozen=True)
class Choice(Param):
    choices: Sequence[str] = ()

    def parse(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or value.lower() not in self.choices:
            raise InvalidSpec(f"must be one of {', '.join(self.choices)}", path=path)
        return value.lower()

    def schema(self) -> dict[str, Any]:
        return {**super().schema(), "enum": list(self.choices)}

    def _range_text(self) -> str:
        return "|".join(self.choices)


@dataclass(frozen=True)
class Text(Param):
    max_length: int = 200

    def parse(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise _type_error(path, "a string", value)
        if not value.strip():
            raise InvalidSpec("must not be empty", path=path)
        if len(value) > self.max_length:
            raise InvalidSpec(f"must be at most {self.max_length} characters", path=path)
        if any(ord(c) < 32 and c not in "\t" for c in value):
            raise InvalidSpec("must not contain control characters", path=path)
        return value

    def schema(self) -> dict[str, Any]:
        return {**super().schema(), "minLength": 1, "maxLength": self.max_length}


@dataclass(frozen=True)
class Color(Param):
    """A CSS colour (`#rrggbb`, `#rrggbbaa`, `rgb(...)`, a name) or `transparent`."""

    def parse(self, value: Any, path: str) -> tuple[int, int, int, int]:
        if not isinstance(value, str) or len(value) > 40:
            raise _type_error(path, 'a colour such as "#ffffff" or "white"', value)
        if value.strip().lower() == "transparent":
            return (0, 0, 0, 0)
        try:
            rgba = ImageColor.getcolor(value.strip(), "RGBA")
        except ValueError:
            raise InvalidSpec(f"{value!r} is not a colour", path=path) from None
        assert isinstance(rgba, tuple)
        return (rgba[0], rgba[1], rgba[2], rgba[3])


_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:/x]\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Ratio(Param):
    """An aspect ratio: `"16:9"`, `"4/3"` or a positive number (width / height)."""

    json_type: ClassVar[str] = "string"

    def parse(self, value: Any, path: str) -> float:
        ratio: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            ratio = float(value)
        elif isinstance(value, str):
            match = _RATIO.match(value)
            if match and float(match.group(2)) > 0:
                ratio = float(match.group(1)) / float(match.group(2))
        if ratio is None or not math.isfinite(ratio) or not 0.01 <= ratio <= 100:
            raise InvalidSpec('must be an aspect ratio such as "16:9" (0.01 to 100)', path=path)
        return ratio

    def schema(self) -> dict[str, Any]:
        out = super().schema()
        out.pop("type")
        return {
            "oneOf": [
                {"type": "string", "pattern": _RATIO.pattern},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            **out,
        }
