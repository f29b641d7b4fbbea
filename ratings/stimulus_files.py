"""Stimulus files: where they live, making every version of an image the same length, and which
file a rater may load.

Paths are built from ids and slugs only (never a raw dataset or method string from a study file, which
may hold ``..``), and every path is resolved and checked to lie under ``MEDIA_ROOT`` before it is
written or read, so no study can write into another's files or outside the media folder.

A PNG's length ranks the methods (a smooth nearest or bicubic upscaling compresses better than a
detailed SR image), so once every version of an image is made, each is padded with a private ancillary
PNG chunk (``srPd``: ignored by every decoder) to the same length: a rater's browser, or anyone
watching the traffic, learns nothing from ``Content-Length``.

Serving: stimulus files and session items never change once made, so each worker process keeps small
caches of ``public id -> (file, SHA-256)`` and ``token -> the rater's assigned public ids``; serving an
image then costs no query, which matters because every rating is followed by one image download.
Misses are not cached (a stimulus may be made, a session drawn, later). The file's SHA-256 is
checked against the stored one before it is served (and remembered per file size and mtime): a file
changed behind the database's back is logged as an error and never shown.
"""

from __future__ import annotations

import logging
import struct
import zlib
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.utils.text import slugify

from sr_models.files import write_bytes_atomic
from sr_models.inference import sha256_file

from .models import SessionItem, Stimulus, Study
from .study_file import REFERENCE_METHOD

__all__ = ["UnsafeMediaPath", "equalise_lengths", "media_file", "stimulus_file_for", "stimulus_path"]

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary (lowercase 1st letter), private (lowercase 2nd), reserved bit clear (uppercase 3rd), safe to
# copy (lowercase 4th): decoders skip it, so the pixels are untouched.
PADDING_CHUNK = b"srPd"
CHUNK_OVERHEAD = 12  # length, type, CRC


class UnsafeMediaPath(ValueError):
    """A path that would leave MEDIA_ROOT."""


def media_file(relative: str) -> Path:
    """``MEDIA_ROOT / relative``, resolved; raises :class:`UnsafeMediaPath` if it leaves MEDIA_ROOT."""
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / relative).resolve()
    if root not in path.parents:
        raise UnsafeMediaPath(f"{relative!r} is not inside MEDIA_ROOT {root}")
    return path


def _part(pk: int, name: str) -> str:
    """``<id>-<slug>``: unique by the id, readable by the slug (which alone may collide or be empty)."""
    slug = slugify(name)
    return f"{pk}-{slug}" if slug else str(pk)


def stimulus_path(stimulus: Stimulus) -> str:
    """Relative path under MEDIA_ROOT; readable for researchers, never shown to raters."""
    image = stimulus.image
    return (f"studies/{_part(stimulus.study_id, stimulus.study.name)}/{_part(image.dataset_id, image.dataset.name)}/"
            f"{_part(stimulus.condition_id, stimulus.condition.name)}/{_part(image.pk, image.name)}.png")


# -- the same length for every version of an image ------------------------------------------------
def _chunks(data: bytes):
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    at = len(PNG_SIGNATURE)
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        end = at + CHUNK_OVERHEAD + length
        yield data[at + 4:at + 8], data[at:end]
        at = end


def unpadded(data: bytes) -> bytes:
    """The PNG without our padding chunk."""
    return PNG_SIGNATURE + b"".join(chunk for kind, chunk in _chunks(data) if kind != PADDING_CHUNK)


def padded(data: bytes, length: int) -> bytes:
    """The (unpadded) PNG with a padding chunk before IEND making it exactly ``length`` bytes."""
    n = length - len(data) - CHUNK_OVERHEAD
    if n < 0:
        raise ValueError(f"a {len(data)}-byte PNG cannot be padded to {length} bytes")
    body = PADDING_CHUNK + bytes(n)
    chunk = struct.pack(">I", n) + body + struct.pack(">I", zlib.crc32(body))
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + chunk + data[iend:]


def equalise_lengths(study_id: int) -> int:
    """Pad every made version of each image of the study to one length; returns the files rewritten.

    Idempotent (earlier padding is removed first, so a method added later just raises the length),
    and safe to run twice at once (both write the same bytes). Runs outside any transaction: only each
    stimulus's own ``sha256`` update writes to the database.
    """
    rewritten = 0
    stimuli = (Stimulus.objects.filter(study_id=study_id, state=Stimulus.State.DONE).exclude(file="")
               .order_by("image_id").values_list("pk", "image_id", "file", "sha256"))
    by_image: dict[int, list[tuple[int, str, str]]] = {}
    for pk, image_id, file, sha in stimuli:
        by_image.setdefault(image_id, []).append((pk, file, sha))
    for versions in by_image.values():
        contents = {pk: unpadded(media_file(file).read_bytes()) for pk, file, _ in versions}
        length = max(len(data) for data in contents.values()) + CHUNK_OVERHEAD
        for pk, file, sha in versions:
            path = media_file(file)
            if path.stat().st_size == length and sha256_file(path) == sha:
                continue  # padded already (a rerun)
            write_bytes_atomic(path, padded(contents[pk], length))  # a reader never sees half a file
            Stimulus.objects.filter(pk=pk).update(sha256=sha256_file(path))
            rewritten += 1
    return rewritten


# -- serving ------------------------------------------------------------------------------------------
def _shown_to(token: str) -> frozenset[str]:
    """Public ids of every stimulus the rater's session shows: each item's (both of a pair's), and
    the originals a paired study shows beside its pairs (``reference = "hr"``)."""
    items = SessionItem.objects.filter(session__rater__token=token)
    ids = set(items.values_list("stimulus__public_id", flat=True))
    ids |= set(items.exclude(right_stimulus=None).values_list("right_stimulus__public_id", flat=True))
    study = Study.objects.filter(raters__token=token).first()
    if ids and study is not None and study.is_paired and study.pairwise.reference == REFERENCE_METHOD:
        images = items.values_list("stimulus__image_id", flat=True)
        ids |= set(Stimulus.objects.filter(image_id__in=images, condition__name=REFERENCE_METHOD)
                   .values_list("public_id", flat=True))
    return frozenset(ids)


@lru_cache(maxsize=4096)
def _assignment(token: str) -> frozenset[str]:
    ids = _shown_to(token)
    if not ids:
        raise LookupError(token)  # not drawn yet (before consent): not cached
    return ids


def _in_assignment(token: str, public_id: str) -> bool:
    """Cached; a miss is checked again, since an active design adds items as the session goes."""
    return public_id in _assignment(token) or public_id in _shown_to(token)


def _stimulus_row(public_id: str) -> tuple[str, str]:
    row = (Stimulus.objects.filter(public_id=public_id, state=Stimulus.State.DONE)
           .exclude(file="").values_list("file", "sha256").first())
    if row is None:
        raise LookupError(public_id)
    return row


_stimulus = lru_cache(maxsize=100_000)(_stimulus_row)


@lru_cache(maxsize=100_000)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def _verified(path: Path, expected: str) -> bool:
    stat = path.stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns) == expected


def stimulus_file_for(token: str, public_id: str) -> Path | None:
    """The file of stimulus ``public_id`` if it is in the assignment of the rater with ``token``.

    None for another rater's or study's stimulus, one not in the rater's session, and a file whose
    SHA-256 is not the one stored (logged as an error: a file overwritten or damaged on disk).
    """
    try:
        if not _in_assignment(token, public_id):
            return None
        file, sha = _stimulus(public_id)
        path = media_file(file)
        if _verified(path, sha):
            return path
        fresh = _stimulus_row(public_id)  # re-padded since it was cached?
        if fresh != (file, sha):
            _stimulus.cache_clear()
            path = media_file(fresh[0])
            if _verified(path, fresh[1]):
                return path
    except (LookupError, OSError, UnsafeMediaPath):
        return None
    log.error("stimulus %s: %s does not match its stored SHA-256; not served", public_id, path)
    return None

