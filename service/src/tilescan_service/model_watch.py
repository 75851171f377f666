"""Hot model swap: notice that the model file was replaced and have the engine load it in the background."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from tilescan_service.engine import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileStamp:
    """What changes when a file is replaced: a rename brings a new inode, a rewrite a new mtime or size."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileStamp | None:
        """The file's stamp, or None while there is no file (mid-deployment, say)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ModelWatcher:
    """Polls the model file every ``interval`` seconds; a changed stamp makes the engine reload.

    Polling rather than inotify: it works the same on every filesystem a model can be mounted from
    (bind mounts, NFS, Kubernetes ConfigMaps and volumes swapped by symlink), and costs one ``stat``.
    A file that fails to load is not retried until it changes again.
    """

    def __init__(self, engine: Engine, path: Path, interval: float) -> None:
        self.engine = engine
        self.path = path
        self.interval = interval
        # Taken before the first load starts, so a replacement during that load is noticed too.
        self.seen = FileStamp.of(path)

    async def run(self, first_load: asyncio.Future[object]) -> None:
        """Watch until cancelled, once ``first_load`` (the start-up load) has finished."""
        # wait(), not await: cancelling the watcher must not cancel the start-up load with it.
        await asyncio.wait({first_load})
        while True:
            await asyncio.sleep(self.interval)
            stamp = FileStamp.of(self.path)
            if stamp is None or stamp == self.seen:
                continue
            self.seen = stamp
            log.info("model file changed; loading it", extra={"model_path": str(self.path)})
            # Load and warm-up run in a worker thread; requests keep being served by the old model.
            await asyncio.to_thread(self.engine.reload)
