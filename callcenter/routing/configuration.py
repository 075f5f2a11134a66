"""A workspace's configuration (activities, channels, queues, workflows), cached per process.

Routing reads these rows in every transaction and they rarely change, so each process keeps
them in memory, keyed by workspace and tagged with the workspace's `config_version`. Every
change to them bumps that version in the same transaction, and every transaction reads the
workspace row under the workspace lock anyway, so a process notices another's change on its
next transaction: the cache can be stale for no one, on SQLite or PostgreSQL, one process or many.
The cached rows are detached copies and are only read; changes go through the session.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Activity, TaskChannel, TaskQueue, Workflow, Workspace


@dataclass
class WorkspaceConfiguration:
    version: int
    activities: dict[str, Activity]
    channels: dict[str, TaskChannel]
    queues: dict[str, TaskQueue]
    workflows: dict[str, Workflow]
    channels_by_name: dict[str, TaskChannel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.channels_by_name = {channel.unique_name: channel for channel in self.channels.values()}


def load_configuration(session: Session, workspace: Workspace) -> WorkspaceConfiguration:
    def rows(model):
        found = session.scalars(select(model).where(model.workspace_sid == workspace.sid)).all()
        return {row.sid: row for row in found}

    return WorkspaceConfiguration(
        version=workspace.config_version,
        activities=rows(Activity),
        channels=rows(TaskChannel),
        queues=rows(TaskQueue),
        workflows=rows(Workflow),
    )


class ConfigurationCache:
    def __init__(self, size: int = 1024) -> None:
        self._entries: dict[str, WorkspaceConfiguration] = {}
        self._size = size
        self._lock = threading.Lock()

    def get(self, workspace: Workspace) -> WorkspaceConfiguration | None:
        entry = self._entries.get(workspace.sid)
        return entry if entry is not None and entry.version == workspace.config_version else None

    def latest(self, workspace_sid: str) -> WorkspaceConfiguration | None:
        """The entry as this process last validated it (current right after its own transaction)."""
        return self._entries.get(workspace_sid)

    def put(self, workspace_sid: str, configuration: WorkspaceConfiguration) -> None:
        with self._lock:
            if len(self._entries) >= self._size and workspace_sid not in self._entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[workspace_sid] = configuration

    def drop(self, workspace_sid: str) -> None:
        with self._lock:
            self._entries.pop(workspace_sid, None)
