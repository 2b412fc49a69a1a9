"""A small reader for pycep's parse of a Bicep file, enough to check infra/ offline.

No Bicep compiler installs here (the Bicep CLI downloads a binary), so the tests parse the files
with pycep-parser (the parser checkov uses) and evaluate the few expressions they care about:
literals, references to variables and parameters, `${...}` interpolation, property access,
`union()`, `concat()`, `string()`, `subscriptionResourceId()` and `cond ? a : b` (both sides).

pycep's output does not tell a quoted string from an identifier (`'inbox'` and `inbox` both
become "inbox"), so a bare string that names a parameter or variable of the file is read as a
reference. pycep also has no operator precedence: write `(a >= b) ? x : y`, not `a >= b ? x : y`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Bicep", "Choice", "Param", "Unknown", "parse_file"]

_INTERPOLATION = re.compile(r"\$\{([^{}]+)\}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass(frozen=True)
class Param:
    """A reference to a parameter of the file (its value is only known at deployment)."""

    name: str

    def __str__(self) -> str:
        return f"<param {self.name}>"


@dataclass(frozen=True)
class Unknown:
    """An expression the reader does not evaluate (resource properties, module outputs, ...)."""

    text: str

    def __str__(self) -> str:
        return f"<{self.text}>"


@dataclass(frozen=True)
class Choice:
    """Both possible values of `cond ? a : b`."""

    options: tuple[Any, ...]


@dataclass
class Bicep:
    path: Path
    raw: dict[str, Any]
    params: dict[str, Any] = field(init=False)
    variables: dict[str, Any] = field(init=False)
    resources: dict[str, Any] = field(init=False)
    modules: dict[str, Any] = field(init=False)
    outputs: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.params = self.raw.get("parameters") or {}
        self.variables = self.raw.get("variables") or {}
        self.resources = self.raw.get("resources") or {}
        self.modules = self.raw.get("modules") or {}
        self.outputs = self.raw.get("outputs") or {}

    # -- declarations --------------------------------------------------------------------------

    def param_default(self, name: str) -> Any:
        return self.params[name].get("default")

    def decorators(self, name: str) -> dict[str, Any]:
        """A parameter's decorators by type: {"secure": None, "allowed": [...], ...}."""
        return {d["type"]: d.get("argument") for d in self.params[name].get("decorators", [])}

    def resources_of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {
            name: res
            for name, res in self.resources.items()
            if res["type"].lower() == type_.lower() and not res.get("existing")
        }

    def config(self, resource: str) -> dict[str, Any]:
        """A resource's body (for a loop or a condition, the body of one item)."""
        config = self.resources[resource]["config"]
        while isinstance(config, dict) and ("loop_type" in config or "condition" in config):
            config = config["config"]
        return config

    def loop_source(self, resource: str) -> Any:
        """What a `[for x in <source>: ...]` resource iterates over, evaluated."""
        config = self.resources[resource]["config"]
        loop = config["loop_type"]
        assert loop["type"] == "array", loop
        return self.value(loop["detail"]["array_name"])

    def condition(self, resource: str) -> Any:
        config = self.resources[resource]["config"]
        return config.get("condition")

    # -- evaluation ----------------------------------------------------------------------------

    def value(self, expr: Any) -> Any:
        if isinstance(expr, bool | int | float) or expr is None:
            return expr
        if isinstance(expr, list):
            return [self.value(item) for item in expr]
        if isinstance(expr, str):
            return self._string(expr)
        if "function" in expr:
            return self._function(expr["function"])
        if "operator" in expr:
            return self._operator(expr["operator"])
        return {self._key(k): self.value(v) for k, v in expr.items()}

    @staticmethod
    def _key(key: str) -> str:
        return key[1:-1] if len(key) > 1 and key[0] == key[-1] == "'" else key

    def _string(self, text: str) -> Any:
        if _IDENTIFIER.match(text):
            if text in self.variables:
                return self.value(self.variables[text]["value"])
            if text in self.params:
                return Param(text)
            return text
        if _DOTTED.match(text):
            return self._dotted(text.split("."))
        if "${" in text:
            return _INTERPOLATION.sub(self._render, text)
        return text

    def _render(self, match: re.Match[str]) -> str:
        """One `${...}`: its value when that is a known string, else `<expression>`."""
        inner = match.group(1).strip()
        value = self._string(inner)
        return value if isinstance(value, str) and inner not in self.params else f"<{inner}>"

    def _dotted(self, parts: list[str]) -> Any:
        head, rest = parts[0], parts[1:]
        if head in self.variables:
            current = self.value(self.variables[head]["value"])
            for part in rest:
                if not isinstance(current, dict) or part not in current:
                    return Unknown(".".join(parts))
                current = current[part]
            return current
        return Unknown(".".join(parts))

    def _operator(self, op: dict[str, Any]) -> Any:
        kind, operands = op["type"], op["operands"]
        if kind == "property_accessor":
            return self._dotted(self._flatten_accessor(op))
        if kind == "conditional":
            return Choice((self.value(operands["true_value"]), self.value(operands["false_value"])))
        return Unknown(kind)

    def _flatten_accessor(self, op: dict[str, Any]) -> list[str]:
        parts: list[str] = []
        for key in ("operand_1", "operand_2"):
            operand = op["operands"][key]
            if isinstance(operand, str):
                parts.append(operand)
            elif isinstance(operand, dict) and operand.get("operator", {}).get("type") == (
                "property_accessor"
            ):
                parts.extend(self._flatten_accessor(operand["operator"]))
            else:
                parts.append("?")
        return parts

    def _function(self, fn: dict[str, Any]) -> Any:
        kind, args = fn["type"], fn.get("parameters") or {}
        values = [self.value(v) for v in args.values() if v is not None]
        if kind == "union":
            merged: dict[str, Any] = {}
            for item in values:
                if isinstance(item, dict):
                    merged.update(item)
            return merged
        if kind == "concat":
            out: list[Any] = []
            for item in values:
                out.extend(item if isinstance(item, list) else [item])
            return out
        if kind == "string":
            (item,) = values
            if isinstance(item, Choice):
                return Choice(tuple(str(option) for option in item.options))
            return str(item) if isinstance(item, str | int) else Unknown(f"string({item})")
        if kind == "subscription_resource_id":
            return {"subscriptionResourceId": values}
        return Unknown(kind)

    # -- references ----------------------------------------------------------------------------

    def module_output_references(self) -> set[tuple[str, str]]:
        """Every `<module>.outputs.<name>` used anywhere in the file."""
        found: set[tuple[str, str]] = set()

        def walk(node: Any) -> None:
            if isinstance(node, str):
                for m in re.finditer(r"\b([A-Za-z_]\w*)\.outputs\.([A-Za-z_]\w*)", node):
                    found.add((m.group(1), m.group(2)))
            elif isinstance(node, list):
                for item in node:
                    walk(item)
            elif isinstance(node, dict):
                op = node.get("operator")
                if isinstance(op, dict) and op.get("type") == "property_accessor":
                    parts = self._flatten_accessor(op)
                    if len(parts) >= 3 and parts[1] == "outputs":
                        found.add((parts[0], parts[2]))
                for item in node.values():
                    walk(item)

        walk(self.raw)
        return found


def parse_file(parser: Any, path: Path) -> Bicep:
    return Bicep(path, parser.parse(file_path=path))
