"""The embedded broker: kombu's filesystem transport, with messages written atomically.

kombu's own transport creates each message file under its final name and then writes into
it, so a consumer that lists the folder in between takes an empty or partial file, fails on
JSONDecodeError and the worker dies (an open kombu bug). Here a message is written to a
hidden temporary file and renamed into place, so a visible file is always complete; a
consumer takes a file by renaming it into the processed folder (atomic on one filesystem:
two consumers never take the same message); and a file that still does not parse is put
back for a later try while it is young (a writer of the old kind may be mid-write) and
moved aside into `unreadable/` once old, instead of killing the worker.

Used for filesystem:// broker URLs once use_for_filesystem_urls() has run (pickwise/celery.py
calls it): the URL alone picks the transport, so a redis:// URL set anywhere still means Redis.
"""

import logging
import os
import time
import uuid
from pathlib import Path

from kombu.transport import filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

# A file this young that does not parse may still be being written by an older writer.
UNREADABLE_GRACE_SECONDS = 5.0


class Channel(filesystem.Channel):
    def __init__(self, *args, **kwargs):
        # Per queue: names from the last listing not yet taken, newest first.
        self._listings: dict[str, list[str]] = {}
        super().__init__(*args, **kwargs)

    def _put(self, queue, payload, **kwargs):
        # Fixed-width nanoseconds: sorting the names sorts the messages by age.
        name = f"{time.time_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        folder = Path(self.data_folder_out)
        # A leading dot: listings of the queue skip it until it is renamed into place.
        temporary = folder / f".{name}.tmp"
        try:
            with temporary.open("xb") as out:
                out.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, folder / name)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise filesystem.ChannelError(f"Cannot add file {name!r} to {folder}") from exc

    def _list(self, queue) -> list[str]:
        """The queue's files, newest first (taken from the end), kept between calls: listing
        and sorting the whole folder for every message makes draining a burst quadratic."""
        wanted = f"{queue}.msg"
        names = sorted(
            (n for n in os.listdir(self.data_folder_in) if n.partition(".")[2] == wanted),
            reverse=True,
        )
        self._listings[queue] = names
        return names

    def _get(self, queue):
        names = self._listings.get(queue)
        fresh = not names
        if fresh:
            names = self._list(queue)
        while True:
            message = self._take_oldest(names)
            if message is not None:
                return message
            if fresh:
                raise virtual.Empty()
            names, fresh = self._list(queue), True  # files written since the last listing

    def _take_oldest(self, names: list[str]) -> dict | None:
        folder = Path(self.data_folder_in)
        taken_folder = Path(self.processed_folder)
        while names:
            name = names.pop()
            taken = taken_folder / name
            try:
                os.rename(folder / name, taken)  # only one consumer wins the rename
            except OSError:
                continue  # taken by another consumer meanwhile
            try:
                message = loads(bytes_to_str(taken.read_bytes()))
            except (OSError, ValueError) as error:
                self._set_aside(taken, folder / name, error)
                continue
            if not self.store_processed:
                taken.unlink(missing_ok=True)
            return message
        return None

    def _set_aside(self, taken: Path, origin: Path, error: Exception) -> None:
        try:
            age = time.time() - taken.stat().st_mtime
            if age < UNREADABLE_GRACE_SECONDS:
                os.rename(taken, origin)  # try again on a later poll
                return
            aside = taken.parent / "unreadable"
            aside.mkdir(exist_ok=True)
            os.rename(taken, aside / taken.name)
        except OSError:
            return
        logger.error("Message file %s cannot be read (%s); moved to %s.", taken.name, error, aside)


class Transport(filesystem.Transport):
    Channel = Channel


def use_for_filesystem_urls() -> None:
    """Make kombu resolve filesystem:// URLs to this transport."""
    from kombu import transport

    transport.TRANSPORT_ALIASES["filesystem"] = "pickwise.broker:Transport"
    transport._transport_cache.pop("filesystem", None)
