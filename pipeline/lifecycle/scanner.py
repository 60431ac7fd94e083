"""The residue scan: every byte of every file under given folders searched for sentinel
values, in every encoding they may take on disk, inside zip/xlsx and gzip members too.

A sentinel is a text known to be of the data (given by the operator, or derived from the
data before they go, kept in memory only); reports name the file and the form, never the
value. The scan also looks for identical copies of the files received (by their SHA-256),
which needs no sentinel. A scan that had no sentinel to search for is not "clean": it is
not conclusive (`ScanReport.conclusive`), and says so.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.lifecycle.dates import iso

SCAN_SKIP_DIRS = {".venv", ".git"}



@dataclass(frozen=True)
class Sentinel:
    text: str
    origin: str  # "fourni" (run config) or "dérivé" (from the data, before destruction)


ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be", "cp1252", "json-ascii")


def sentinel_patterns(text: str) -> dict[str, bytes]:
    """The byte forms under which a text may sit in a file."""
    forms: dict[str, bytes] = {"utf-8": text.encode("utf-8")}
    for label, codec in (("utf-16-le", "utf-16-le"), ("utf-16-be", "utf-16-be"), ("cp1252", "cp1252")):
        try:
            forms[label] = text.encode(codec)
        except UnicodeEncodeError:
            pass
    escaped = json.dumps(text)[1:-1].encode("ascii", "backslashreplace")
    forms["json-ascii"] = escaped
    out: dict[str, bytes] = {}
    for label, pattern in forms.items():
        if pattern not in out.values():
            out[label] = pattern
    return out


@dataclass
class ScanReport:
    roots: list[str] = field(default_factory=list)
    files_scanned: int = 0
    bytes_scanned: int = 0
    archive_members_scanned: int = 0
    sentinels_given: int = 0
    sentinels_derived: int = 0
    encodings: list[str] = field(default_factory=list)
    hits: list[dict] = field(default_factory=list)  # path, form, origin, count: never the value
    tables_scanned: int = 0
    unreadable: list[str] = field(default_factory=list)
    finished_at: str = ""
    # what was searched and how, one entry per kind of place (files, DuckDB, the instance's database...)
    scopes: list[dict] = field(default_factory=list)
    copies_searched: int = 0  # fingerprints of received files looked for (identical copies)
    not_checked: list[str] = field(default_factory=list)  # what could not be checked, and why
    no_value_reason: str = ""  # why no value of the data was searched, when none was

    @property
    def conclusive(self) -> bool:
        """Whether a value of the data was searched for: without one, finding nothing proves nothing."""
        return bool(self.sentinels_given or self.sentinels_derived)

    @property
    def clean(self) -> bool:
        """Values of the data were searched for and none was found (nor a copy of a received file)."""
        return self.conclusive and not self.hits

    @property
    def verdict(self) -> str:
        return "traces trouvées" if self.hits else ("aucune trace trouvée" if self.conclusive else "non concluant")

    def to_dict(self) -> dict:
        return {
            "roots": self.roots, "files_scanned": self.files_scanned, "bytes_scanned": self.bytes_scanned,
            "archive_members_scanned": self.archive_members_scanned, "sentinels_given": self.sentinels_given,
            "sentinels_derived": self.sentinels_derived, "encodings": self.encodings, "hits": self.hits,
            "tables_scanned": self.tables_scanned, "unreadable": self.unreadable, "clean": self.clean,
            "conclusive": self.conclusive, "verdict": self.verdict, "copies_searched": self.copies_searched,
            "not_checked": self.not_checked, "no_value_reason": self.no_value_reason,
            "finished_at": self.finished_at, "scopes": self.scopes,
        }


def walk_files(roots: Iterable[Path]) -> Iterator[Path]:
    seen: set[str] = set()
    for root in roots:
        if not root.exists():
            continue
        if root.is_file():
            candidates: Iterable[Path] = [root]
        else:
            def _gen(top: Path = root) -> Iterator[Path]:
                for current, dirs, files in os.walk(top, followlinks=False):
                    dirs[:] = sorted(d for d in dirs if d not in SCAN_SKIP_DIRS)
                    for name in sorted(files):
                        yield Path(current) / name
            candidates = _gen()
        for path in candidates:
            if path.is_symlink() or not path.is_file():
                continue
            key = os.path.realpath(path)
            if key in seen:
                continue
            seen.add(key)
            yield path


def _count_forms(data: bytes, sentinels: list[tuple[Sentinel, dict[str, bytes]]]) -> list[tuple[Sentinel, str, int]]:
    found = []
    for sentinel, forms in sentinels:
        for label, pattern in forms.items():
            n = data.count(pattern)
            if n:
                found.append((sentinel, label, n))
    return found


def expand_archive(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Members of a zip (xlsx, docx...) or the content of a gzip file, decompressed."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    if not info.is_dir() and info.file_size < (512 << 20):
                        yield info.filename, archive.read(info)
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
            return
    elif data[:2] == b"\x1f\x8b":
        try:
            yield "gzip", gzip.decompress(data)
        except (OSError, EOFError):
            return


COPY_FORM = "copie à l'identique (SHA-256)"


def residue_scan(roots: Iterable[Path], sentinels: list[Sentinel], display: Callable[[Path], str] = str,
                 copies: dict[str, str] | None = None) -> ScanReport:
    """Search every file under `roots` (not following links; .venv and .git skipped) for
    every sentinel in every byte form of `sentinel_patterns`, inside zip/gzip members too,
    and for identical copies of the files whose SHA-256 are the keys of `copies` (a file, or
    a member of an archive; the value names what it is a copy of, e.g. 'fichier reçu')."""
    roots = list(roots)
    copies = dict(copies or {})
    report = ScanReport(
        roots=[str(r) for r in roots],
        sentinels_given=sum(s.origin == "fourni" for s in sentinels),
        sentinels_derived=sum(s.origin == "dérivé" for s in sentinels),
        copies_searched=len(copies),
    )
    prepared = [(s, sentinel_patterns(s.text)) for s in sentinels]
    report.encodings = list(ENCODINGS)
    max_len = max((len(p) for _, forms in prepared for p in forms.values()), default=1)
    hits: dict[tuple[str, str, str], int] = {}

    def add(path_label: str, found: list[tuple[Sentinel, str, int]]) -> None:
        for sentinel, label, n in found:
            key = (path_label, label, sentinel.origin)
            hits[key] = hits.get(key, 0) + n

    def copy_of(path_label: str, data: bytes) -> None:
        if copies and (what := copies.get(hashlib.sha256(data).hexdigest())):
            hits[(path_label, COPY_FORM, what)] = hits.get((path_label, COPY_FORM, what), 0) + 1

    for path in walk_files(roots):
        try:
            size = path.stat().st_size
            report.files_scanned += 1
            report.bytes_scanned += size
            if size <= (256 << 20):
                data = path.read_bytes()
                add(display(path), _count_forms(data, prepared))
                copy_of(display(path), data)
                for member, content in expand_archive(data):
                    report.archive_members_scanned += 1
                    add(f"{display(path)}!{member}", _count_forms(content, prepared))
                    copy_of(f"{display(path)}!{member}", content)
            else:
                digest, head = hashlib.sha256(), b""
                with open(path, "rb") as handle:
                    tail = b""
                    while block := handle.read(64 << 20):
                        head = head or block[:4]
                        add(display(path), _count_forms(tail + block, prepared))
                        digest.update(block)
                        tail = block[-(max_len - 1):] if max_len > 1 else b""
                if copies and (what := copies.get(digest.hexdigest())):
                    hits[(display(path), COPY_FORM, what)] = 1
                if head == b"PK\x03\x04" or head[:2] == b"\x1f\x8b":  # too big to expand in memory
                    report.not_checked.append(f"{display(path)} : archive de plus de 256 Mo, lue octet par octet "
                                              "mais non décompressée")
        except OSError as exc:
            report.unreadable.append(f"{display(path)} ({exc.__class__.__name__})")
    report.hits = [
        {"path": p, "form": form, "origin": origin, "count": n} for (p, form, origin), n in sorted(hits.items())
    ]
    report.finished_at = iso()
    return report


def public_text(paths, data_dirs: set[Path], home: Path) -> str:
    """Text of what is public or kept (code, configuration, documentation, reports, the
    reports' xlsx shared strings), outside the data folders `data_dirs` and `home`."""
    from pipeline.settings import PACKAGE_ROOT

    skip = {".venv", ".git", "__pycache__", ".pytest_cache", ".hypothesis", ".dagster_home"}
    suffixes = {".py", ".sql", ".yaml", ".yml", ".md", ".csv", ".toml", ".txt", ".json", ".html", ".cfg", ".ini"}
    package = PACKAGE_ROOT.resolve()
    texts = []
    for base in {package, paths.root.resolve(), paths.config.resolve(), paths.reports.resolve()}:
        if not base.exists():
            continue
        for current, dirs, files in os.walk(base):
            here = Path(current).resolve()
            dirs[:] = [d for d in dirs if d not in skip and (here / d).resolve() not in data_dirs
                       and not (base == package and d in ("raw", "warehouse", "reports"))
                       and not (here / d).resolve().is_relative_to(home)]
            for name in files:
                path = here / name
                if path.suffix.lower() not in suffixes or path.stat().st_size > (20 << 20):
                    continue
                data = path.read_bytes()
                texts.append(data.decode("utf-8", errors="ignore"))
                texts.append(data.decode("cp1252", errors="ignore"))
        if base == paths.reports.resolve():
            for path in base.rglob("*"):
                if path.is_file() and path.suffix.lower() not in suffixes:
                    for _, content in expand_archive(path.read_bytes()):
                        texts.append(content.decode("utf-8", errors="ignore"))
    return "\x00".join(texts)
