"""Fault injection for tests of the local host (never part of the app).

`DEVHOST_FAULTS` holds a JSON list of rules; a queue message that a rule matches meets that
fault instead of (or after) its function:

    [{"function": "worker", "match": {"name": "thumb"}, "action": "fail"},
     {"function": "worker", "match": {"index": 0}, "action": "exit-after", "times": 1}]

- `fail`: the invocation raises, as a function that always fails would;
- `exit-before`: the process dies (exit 137, like a SIGKILL) before the function runs;
- `exit-after`: the function runs to completion, then the process dies before the message
  is deleted: the "worker died after writing, before acknowledging" fault;
- `hang`: the invocation never finishes (the message stays leased), like a stuck function.
`match` compares keys of the message's JSON body; `times` limits the rule to messages
dequeued at most that many times (default: always).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Fault", "find_fault", "load_faults"]

ACTIONS = ("fail", "exit-before", "exit-after", "hang")


@dataclass(frozen=True)
class Fault:
    function: str
    action: str
    match: dict[str, Any] = field(default_factory=dict)
    times: int | None = None


def load_faults(text: str | None = None) -> list[Fault]:
    raw = json.loads(text if text is not None else os.environ.get("DEVHOST_FAULTS", "[]"))
    faults = [Fault(r["function"], r["action"], r.get("match", {}), r.get("times")) for r in raw]
    for fault in faults:
        if fault.action not in ACTIONS:
            raise ValueError(f"DEVHOST_FAULTS: unknown action {fault.action!r}")
    return faults


def find_fault(faults: list[Fault], function: str, body: bytes, dequeue_count: int) -> Fault | None:
    if not faults:
        return None
    try:
        message = json.loads(body)
    except ValueError:
        message = {}
    for fault in faults:
        if fault.function != function:
            continue
        if fault.times is not None and dequeue_count > fault.times:
            continue
        if all(isinstance(message, dict) and message.get(k) == v for k, v in fault.match.items()):
            return fault
    return None
