"""Tracked attachment files: content-addressed blobs plus one small sidecar per attachment.

Layout under the attachment directory::

    <sha256>                  the file's bytes, written once however often it is sent
    meta/<attachmentid>.json  {"sha256", "filename", "contenttype", "size"}

Why a sidecar when `trackedattachment` holds the same facts: the download route is on
the hot path, which must keep answering while the database is slow or down (DESIGN §5).
A token names only the attachment id, so the tracker reads the sidecar and streams the
blob without a database round trip.

Every write goes to a temporary name, is fsynced, then renamed, so a crash leaves either
the old file or the whole new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..instrument import AttachmentPolicy
from ..settings import Settings

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class AttachmentMeta:
    sha256: str
    filename: str
    content_type: str
    size: int


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write `data` to `path` durably: temp file, fsync, rename, fsync the directory.

    `sync_dir=False` leaves the directory fsync to a caller that writes several files
    and syncs the directory once for all of them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable (POSIX keeps names in the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AttachmentFiles:
    """Reads and writes the attachment directory; `policy` says what gets replaced."""

    def __init__(self, root: Path, policy: AttachmentPolicy | None = None) -> None:
        self.root = root
        self.policy = policy or AttachmentPolicy()

    @classmethod
    def from_settings(cls, settings: Settings) -> AttachmentFiles:
        policy = AttachmentPolicy(settings.attachments_mode, settings.attachments_min_bytes)
        return cls(settings.attachment_dir, policy)

    def blob_path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256

    def _meta_path(self, attachment_id: int) -> Path:
        return self.root / "meta" / f"{int(attachment_id)}.json"

    def put(self, data: bytes, sha256: str) -> str:
        """Store the bytes under their hash (once); returns the path relative to root."""
        path = self.blob_path(sha256)
        if not path.is_file() or path.stat().st_size != len(data):
            write_atomic(path, data)
        return sha256

    def write_meta(self, attachment_id: int, meta: AttachmentMeta) -> None:
        body = {
            "sha256": meta.sha256,
            "filename": meta.filename,
            "contenttype": meta.content_type,
            "size": meta.size,
        }
        write_atomic(self._meta_path(attachment_id), json.dumps(body).encode())

    def read_meta(self, attachment_id: int) -> AttachmentMeta | None:
        """The sidecar of an attachment, or None when it is missing or unreadable."""
        try:
            raw = json.loads(self._meta_path(attachment_id).read_bytes())
            meta = AttachmentMeta(
                str(raw["sha256"]), str(raw["filename"]), str(raw["contenttype"]), int(raw["size"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return meta if _SHA256.fullmatch(meta.sha256) else None

    def remove(self, attachment_id: int, sha256: str | None) -> int:
        """Retention (issue 13): delete an attachment's sidecar, and its blob when
        `sha256` is given (no newer attachment shares it); the download link then answers
        404. Returns how many files went; missing ones are not an error."""
        paths = [self._meta_path(attachment_id)]
        if sha256 is not None and _SHA256.fullmatch(sha256):
            paths.append(self.blob_path(sha256))
        gone = 0
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                gone += 1
        return gone


def remove_older(directory: Path, before: float, pattern: str = "*") -> int:
    """Delete the files in `directory` (not below it) matching `pattern` last modified
    before `before` (a Unix time); returns how many went. A missing directory holds none."""
    gone = 0
    if not directory.is_dir():
        return 0
    for path in directory.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and path.stat().st_mtime < before:
                path.unlink()
                gone += 1
    if gone:
        fsync_dir(directory)
    return gone
