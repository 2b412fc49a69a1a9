"""The job spec (API.md): which outputs to make from one image, and who to tell.

    {"operations": [{"op": "resize", "width": 800, "then": [{"op": "sharpen"}],
                     "name": "hero", "format": "webp", "quality": 80}, ...],
     "preset": "web",
     "webhook": {"url": "https://example.org/hook"}}

Each entry of `operations` makes exactly one output. `parse_spec` validates everything and
reports the first problem with the path a client wrote (`operations[2].then[0].radius`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.errors import InvalidSpec, TooManyOperations
from shared.imaging.pipeline import Chain, Step
from shared.imaging.presets import PRESETS
from shared.imaging.registry import get_operation

__all__ = ["JobSpec", "OperationSpec", "parse_spec", "parse_spec_text"]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOP_KEYS = ("operations", "preset", "webhook")


@dataclass(frozen=True)
class OperationSpec:
    index: int
    name: str
    op: str  # the first step's operation
    chain: Chain

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "op": self.op,
            "chain": self.chain.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OperationSpec:
        return cls(int(data["index"]), data["name"], data["op"], Chain.from_dict(data["chain"]))


@dataclass(frozen=True)
class JobSpec:
    operations: tuple[OperationSpec, ...]
    preset: str | None = None
    webhook_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "operations": [o.to_dict() for o in self.operations],
            "preset": self.preset,
            "webhook": {"url": self.webhook_url} if self.webhook_url else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        webhook = data.get("webhook") or {}
        return cls(
            tuple(OperationSpec.from_dict(o) for o in data["operations"]),
            data.get("preset"),
            webhook.get("url"),
        )


def parse_spec_text(text: str | bytes | None, **kwargs: Any) -> JobSpec:
    """Parse spec JSON text (a multipart part or a query parameter)."""
    if (
        text is None
        or not str(text if isinstance(text, str) else text.decode("utf-8", "replace")).strip()
    ):
        return parse_spec(None, **kwargs)
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSpec(f"not valid JSON ({exc.__class__.__name__})", path="spec") from None
    return parse_spec(raw, **kwargs)


def parse_spec(
    raw: Any,
    *,
    max_operations: int = 20,
    max_chain_steps: int = 10,
    default_preset: str | None = "web",
) -> JobSpec:
    """Validate a spec (already decoded from JSON). `None` means the default preset."""
    if raw is None:
        raw = {"preset": default_preset} if default_preset else {}
    if not isinstance(raw, Mapping):
        raise InvalidSpec("must be a JSON object", path="spec")
    for key in raw:
        if key not in _TOP_KEYS:
            raise InvalidSpec(
                f"unknown field; the spec takes {', '.join(_TOP_KEYS)}", path=str(key)[:40]
            )
    entries: list[tuple[str, Any]] = []
    operations = raw.get("operations")
    if operations is not None:
        if not isinstance(operations, list):
            raise InvalidSpec("must be a list of operations", path="operations")
        if not operations and raw.get("preset") is None:
            raise InvalidSpec("must not be empty", path="operations")
        entries.extend((f"operations[{i}]", entry) for i, entry in enumerate(operations))
    preset = raw.get("preset")
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise InvalidSpec(f"unknown preset; choose one of {', '.join(PRESETS)}", path="preset")
        entries.extend(
            (f"preset[{preset}][{i}]", entry)
            for i, entry in enumerate(PRESETS[preset]["operations"])
        )
    if not entries:
        raise InvalidSpec("name some operations or a preset", path="operations")
    if len(entries) > max_operations:
        raise TooManyOperations(
            f"The spec asks for {len(entries)} outputs; the limit is {max_operations}.",
            limit=max_operations,
        )

    parsed: list[OperationSpec] = []
    taken: set[str] = set()
    explicit = [e.get("name") for _, e in entries if isinstance(e, Mapping)]
    for index, (path, entry) in enumerate(entries):
        chain, op_name, name = _parse_entry(entry, path, max_chain_steps)
        if name is None:
            name = _unique(op_name, taken, explicit)
        elif name in taken:
            raise InvalidSpec(f"the name {name!r} is used twice", path=f"{path}.name")
        taken.add(name)
        parsed.append(OperationSpec(index, name, op_name, chain))
    return JobSpec(tuple(parsed), preset, _parse_webhook(raw.get("webhook")))


def _parse_entry(entry: Any, path: str, max_steps: int) -> tuple[Chain, str, str | None]:
    if not isinstance(entry, Mapping):
        raise InvalidSpec('must be an object such as {"op": "resize", "width": 800}', path=path)
    then = entry.get("then", [])
    if not isinstance(then, list):
        raise InvalidSpec("must be a list of steps", path=f"{path}.then")
    if len(then) + 1 > max_steps:
        raise TooManyOperations(
            f"{path} has {len(then) + 1} steps; the limit is {max_steps} per chain.",
            limit=max_steps,
            path=f"{path}.then",
        )
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not NAME.match(name)):
        raise InvalidSpec(
            "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            path=f"{path}.name",
        )
    head = get_operation(entry.get("op"), path)
    steps = [Step(head.name, head.parse(entry, path, extra_keys=("name", "then")))]
    for i, raw_step in enumerate(then):
        step_path = f"{path}.then[{i}]"
        if not isinstance(raw_step, Mapping):
            raise InvalidSpec('must be an object with an "op"', path=step_path)
        op = get_operation(raw_step.get("op"), step_path)
        steps.append(Step(op.name, op.parse(raw_step, step_path)))
    return Chain.of(*steps), head.name, name


def _unique(base: str, taken: set[str], explicit: list[Any]) -> str:
    """`resize`, then `resize-2`, `resize-3`, ... skipping names given explicitly."""
    candidate, n = base, 1
    while candidate in taken or candidate in explicit:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _parse_webhook(raw: Any) -> str | None:
    if raw is None:
        return None
    url = raw.get("url") if isinstance(raw, Mapping) else None
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidSpec('must be an object {"url": "https://..."}', path="webhook")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username:
        raise InvalidSpec("must be an http(s) URL without credentials", path="webhook.url")
    return url
