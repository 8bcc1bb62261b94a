"""The writes a run could not record yet: :class:`PendingWrites` runs each write (retrying
transient store errors), keeps those that still fail to send again, and pauses a failing store
so that training is not held up by it."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from capx.tracking.retries import describe_failure, retry

log = logging.getLogger(__name__)

DATABASE, ARTIFACTS = "database", "artifacts"  # the two stores a run's writes go to


class PendingWrites:
    """Runs one run's writes; a write that fails is kept, not raised.

    The database (params, metrics, tags) and the artifact store (files) fail apart: a failed
    upload pauses only uploads, so metrics keep going to the database. A paused kind of write is
    tried again after :attr:`PAUSE_SECONDS` (an outage may pass), and when it works the writes
    kept meanwhile are sent. :attr:`degraded` keeps the first cause, in words.
    """

    PAUSE_SECONDS = 60.0
    MAX_KEPT = 10_000  # database writes kept to send again; beyond, they are counted as lost

    def __init__(self, run_id: str):
        self.run_id = run_id              # named in the warnings
        self.degraded: str | None = None  # the first failure to record, in words
        self.skipped = 0                  # writes not done when asked (kept or lost)
        self.lost: list[str] = []         # writes that could not even be kept
        self._paused_until = {DATABASE: 0.0, ARTIFACTS: 0.0}
        self._kept: dict[Any, tuple[Callable[[], Any], str, str]] = {}
        self.copies = UnsentCopies()  # copies of files whose upload failed

    def write(self, call: Callable[[], Any], what: str, kind: str = DATABASE,
              key: Any = None) -> None:
        """Run one write (with :func:`retry`); a failure keeps it to send again instead of
        raising. ``key``: writes with the same key replace each other while kept (a file
        uploaded again to the same place)."""
        key = key if key is not None else (kind, len(self._kept), time.monotonic_ns())
        if time.monotonic() < self._paused_until[kind]:
            self.skipped += 1
            self._keep(key, call, what, kind)
            return
        try:
            retry(call, what)
        except Exception as exc:  # noqa: BLE001 - recording must never stop training
            cause = describe_failure(exc)
            if self.degraded is None:
                self.degraded = f"{what}: {cause}"
            if not self._paused_until[kind]:
                log.warning("MLflow could not record %s to run %s (%s); training goes on, "
                            "%s; it is tried again in %.0f s and before the run closes", what,
                            self.run_id, cause, "metrics still go to the database"
                            if kind == ARTIFACTS else "its checkpoints are still written "
                            "locally", self.PAUSE_SECONDS)
            else:
                log.debug("MLflow still cannot record (%s): %s", what, cause)
            self.skipped += 1
            self._keep(key, call, what, kind)
            self._paused_until[kind] = time.monotonic() + self.PAUSE_SECONDS
        else:
            self._kept.pop(key, None)  # an older failed write for the same place is superseded
            if self._paused_until[kind]:
                self._paused_until[kind] = 0.0
                sent = self._send_kept(kind)
                log.warning("MLflow records %s to run %s again; %d kept write(s) sent",
                            kind, self.run_id, sent)

    def _keep(self, key: Any, call: Callable[[], Any], what: str, kind: str) -> None:
        if kind == DATABASE and len(self._kept) >= self.MAX_KEPT:
            self.lost.append(what)
            return
        self._kept.pop(key, None)  # the newest write for a key goes last
        self._kept[key] = (call, what, kind)

    def _send_kept(self, kind: str | None = None) -> int:
        """Send the kept writes (of ``kind``, or all: the database's first) in order, until one
        fails (its store still fails: the rest stay kept). Returns how many were sent."""
        sent = 0
        for wanted in (DATABASE, ARTIFACTS):
            if kind not in (None, wanted):
                continue
            for key, (call, what, write_kind) in list(self._kept.items()):
                if write_kind != wanted:
                    continue
                try:
                    retry(call, what)
                except Exception as exc:  # noqa: BLE001 - stays kept, named at the end
                    log.debug("MLflow still cannot record %s: %s", what, describe_failure(exc))
                    break  # that store still fails: the rest of its writes stay kept
                else:
                    del self._kept[key]
                    sent += 1
        return sent

    def send_all(self) -> int:
        """Lift the pauses and send every kept write (before the run closes)."""
        self._paused_until = {DATABASE: 0.0, ARTIFACTS: 0.0}
        return self._send_kept()

    @property
    def missing(self) -> list[str]:
        """What the run's record lacks: the writes kept unsent and those lost."""
        return [what for _, what, _ in self._kept.values()] + self.lost

    @property
    def database_down(self) -> bool:
        """Whether a database write is still kept (its store failed at the last try)."""
        return any(kind == DATABASE for _, _, kind in self._kept.values())

    def upload(self, call: Callable[[], Any], destination: str) -> None:
        self.write(call, f"artifact {destination}", ARTIFACTS, key=destination)

    def upload_file(self, source: Path, destination: str,
                    upload: Callable[[Path], Any]) -> None:
        """Upload ``source``; if that fails, a copy is kept to upload again (the file may be a
        temporary one, or be overwritten before the next try)."""
        self.upload(lambda: upload(source), destination)
        kept = self._kept.get(destination)
        if kept is not None:
            copy = self.copies.make(source, destination)
            if copy is not None:
                self._kept[destination] = (lambda: upload(copy), kept[1], ARTIFACTS)

class UnsentCopies:
    """Copies of files whose upload failed, in a temporary folder made at the first one: the
    original may be a temporary file, or be overwritten before the upload is tried again."""

    def __init__(self) -> None:
        self._folder: Path | None = None

    def make(self, source: Path, destination: str) -> Path | None:
        """A copy of ``source`` (replacing an older copy for the same ``destination``), or None
        if it cannot be made."""
        try:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="capx-unsent-"))
            folder = self._folder / destination.strip("/").replace("/", "__")
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            target = folder / source.name
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
            return target
        except OSError as exc:  # the original is tried again instead
            log.debug("could not keep a copy of %s to upload later: %s", source, exc)
            return None

    def remove(self) -> None:
        """Remove the copies (once the run's last uploads have been tried)."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def summarise(missing: Sequence[str], most: int = 12) -> str:
    """``"3 writes: artifact checkpoints/last.npz, metrics at step 40-50, ..."``."""
    unique = list(dict.fromkeys(missing))
    listed = ", ".join(unique[:most]) + (f", and {len(unique) - most} more"
                                         if len(unique) > most else "")
    return f"{len(missing)} write{'s' if len(missing) != 1 else ''}: {listed}"
