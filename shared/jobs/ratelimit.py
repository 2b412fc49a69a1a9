"""Per-principal submission limits, shared by every instance (Table Storage).

One row per principal in table `jobindex` (`rate-<owner hash>`, RowKey `window`) holds the
current one-minute window and how many jobs were accepted in it; increments are ETag-guarded,
so concurrent instances never lose a count. Only accepted submissions count: a rejected upload
still leaves nothing behind. Over the limit, the API answers 429 RATE_LIMITED with
Retry-After set to the seconds left in the window.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.errors import RateLimited
from shared.jobs.store import owner_hash

__all__ = ["RateLimiter"]

WINDOW = 60


class RateLimiter:
    def __init__(
        self, table: TableClient, per_minute: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.table = table
        self.per_minute = per_minute
        self.clock = clock

    def take(self, owner: str) -> None:
        """Count one accepted submission for `owner`, or raise RateLimited."""
        if self.per_minute <= 0:
            return
        now = self.clock()
        window = int(now // WINDOW)
        key = {"PartitionKey": f"rate-{owner_hash(owner)}", "RowKey": "window"}
        for _ in range(8):
            try:
                row = self.table.get_entity(key["PartitionKey"], key["RowKey"])
            except ResourceNotFoundError:
                try:
                    self.table.create_entity({**key, "Window": window, "Count": 1})
                    return
                except ResourceExistsError:
                    continue
            count = int(row["Count"]) if int(row["Window"]) == window else 0
            if count >= self.per_minute:
                raise RateLimited(
                    f"At most {self.per_minute} jobs a minute; try again shortly.",
                    retry_after=max(1, int(WINDOW - now % WINDOW) + 1),
                )
            try:
                self.table.update_entity(
                    {**key, "Window": window, "Count": count + 1},
                    mode=UpdateMode.REPLACE,
                    etag=row.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return
            except ResourceModifiedError:
                continue
        # Under heavy contention for one principal, admit rather than fail the request.
