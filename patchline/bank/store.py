"""Memory banks on disk: `<root>/<line>/<version>/{index.faiss, bank.json}` and `<root>/<line>/CURRENT`.

A bank is written into a hidden temporary folder and renamed into place, then CURRENT is
replaced atomically, so a reader never sees a half-written bank. Nothing is pickled: the index
is faiss's own format and the metadata is JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

import faiss
import numpy as np

from patchline import __version__
from patchline.bank.leftovers import remove_leftovers, writing
from patchline.bank.meta import FORMAT, BankMeta
from patchline.core.pruned_search import HNSW_EF_CONSTRUCTION, HNSW_M, PrunedPatchSearch, build_hnsw
from patchline.core.search_policy import BankSearch
from patchline.core.search import NearestPatchSearch
from patchline.errors import BankError
from patchline.hashing import sha256_file
from patchline.names import check_name
from patchline.settings import SEARCH_AUTO_WORK

INDEX_FILE = "index.faiss"
SEARCH_FILE = "search.faiss"  # the graph index of an hnsw-searched bank (same vectors, same order)
META_FILE = "bank.json"
CURRENT_FILE = "CURRENT"


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (temporary file in the same folder, fsync, rename);
    on failure (a full disk) the temporary file is removed and the OSError raised, `path` unchanged."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass
class Bank:
    """A loaded bank: the faiss index of normal patch embeddings and its metadata."""

    index: faiss.Index
    meta: BankMeta
    path: Path
    graph: faiss.Index | None = None
    search: NearestPatchSearch = field(init=False, repr=False)
    pruned: PrunedPatchSearch | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.search = NearestPatchSearch.from_faiss(self.index)
        self.pruned = (None if self.graph is None
                       else PrunedPatchSearch(self.search, self.graph, self.meta.search["ef_search"]))

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def grid(self) -> tuple[int, int]:
        return self.meta.grid

    def patch_scores(self, embeddings: np.ndarray, aggregation: str | None = None,
                     threshold: float | None = None, pixel_threshold: float | None = None) -> np.ndarray:
        """(N, H, W, D) float32 embeddings → (N, H, W) float32 distance to the nearest bank patch, as
        core/search_policy.py decides (exact without `aggregation`). The embeddings' dims are checked here."""
        d = embeddings.shape[-1]
        if d != self.index.d:
            raise BankError(f"embeddings have {d} dims but bank {self.path} holds {self.index.d}-dim patches.")
        return BankSearch(self.search, self.pruned).patch_scores(embeddings, aggregation, threshold, pixel_threshold)


def new_version(line_dir: Path) -> str:
    """A fresh version name: UTC time stamp, with a suffix if that name is taken."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name, n = stamp, 1
    while (line_dir / name).exists():
        n += 1
        name = f"{stamp}-{n}"
    return name


def write_bank(root: Path, line: str, patches: np.ndarray, meta: Mapping, search: str = "exact",
               ef_search: int = 8) -> Path:
    """Write a new bank version for `line` and make it CURRENT.

    patches: (M, D) float32 coreset embeddings. meta: the bank.json fields the caller knows
    (settings, threshold, calibration, training-set facts); this adds format, line, version,
    embedding_dim, n_patches, index_sha256, search, created and patchline_version.
    search: "exact", "hnsw" (also builds and writes the graph index, `ef_search` candidates per
    query) or "auto" (hnsw from settings.SEARCH_AUTO_WORK patches × dims on). Returns the new version folder.
    """
    patches = np.ascontiguousarray(patches, dtype=np.float32)

    def fill(staging: Path) -> dict:
        index = faiss.IndexFlatL2(patches.shape[1])
        index.add(patches)
        faiss.write_index(index, str(staging / INDEX_FILE))
        search_record = _write_search_index(staging, patches, search, ef_search)
        return {**meta, "format": FORMAT, "line": line, "embedding_dim": int(patches.shape[1]),
                "n_patches": int(patches.shape[0]), "index_sha256": sha256_file(staging / INDEX_FILE),
                "search": search_record}
    return _publish_version(root, line, fill)


def write_derived_version(root: Path, line: str, source: Path, changes: Mapping) -> Path:
    """A new version of `line` with the patches and search index of version folder `source` (hard
    links, or copies across file systems: bank files are never written in place) and its bank.json
    with `changes` applied; checked, renamed into place and made CURRENT. Returns the new folder."""
    def fill(staging: Path) -> dict:
        full = {**read_meta(source).as_dict(), **changes}
        for name in (INDEX_FILE, full["search"].get("file")):
            if name:
                _link_or_copy(source / name, staging / name)
        return full
    return _publish_version(root, line, fill)


def _publish_version(root: Path, line: str, fill: Callable[[Path], dict]) -> Path:
    """The one way a version is written: leftovers of crashed writes removed, the line's writer lock
    held, `fill(staging)` writing the bank files into a hidden staging folder and returning bank.json's
    fields, then version / created / patchline_version added, the record checked, the folder renamed
    into place and CURRENT replaced. A failed write is one BankError; the live bank stays."""
    check_name(line, "line")
    line_dir = Path(root) / line
    try:
        line_dir.mkdir(parents=True, exist_ok=True)
        remove_leftovers(line_dir)
        with writing(line_dir):
            version = _write_version(line_dir, line, fill)
            write_text_atomic(line_dir / CURRENT_FILE, version + "\n")
    except (OSError, RuntimeError) as exc:  # RuntimeError: faiss's own words for a failed write
        raise BankError(f"cannot write a new bank of line {line} in {line_dir}: {_write_failure(exc, line_dir)}; "
                        f"the live bank is unchanged.") from None
    return line_dir / version


def _write_failure(exc: BaseException, folder: Path) -> str:
    """Why a bank write failed, in a few words (the disk's free space when faiss does not say)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "the disk refused the write"
    return f"the disk refused the write ({free // 1024} KiB free)"


def _write_version(line_dir: Path, line: str, fill: Callable[[Path], dict]) -> str:
    """Write a version folder through a hidden staging folder (removed on any failure); its name."""
    version = new_version(line_dir)
    staging = Path(tempfile.mkdtemp(dir=line_dir, prefix=f".{version}."))
    try:
        full = fill(staging)
        full.update(version=version, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    patchline_version=__version__)
        BankMeta.parse(full, f"bank.json of the new {line} bank")  # never write a bank no reader accepts
        (staging / META_FILE).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        os.rename(staging, line_dir / version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return version


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write_search_index(staging: Path, patches: np.ndarray, search: str, ef_search: int) -> dict:
    """Build and write the graph index when the bank is to be searched by it; bank.json's `search`."""
    if search == "auto":
        search = "hnsw" if patches.shape[0] * patches.shape[1] >= SEARCH_AUTO_WORK else "exact"
    if search == "exact":
        return {"kind": "exact"}
    faiss.write_index(build_hnsw(patches), str(staging / SEARCH_FILE))
    return {"kind": "hnsw", "file": SEARCH_FILE, "index_sha256": sha256_file(staging / SEARCH_FILE),
            "m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": int(ef_search),
            "image_scores": "exact for max and topk<N>: every patch gets an upper bound (coarse grid, graph, "
                            "tight graph: each only where it could matter), the patches that can reach the top N "
                            "are searched exactly; mean and var searched exactly; other patches' scores are upper "
                            "bounds (graph bounds on a defect's frame where they reach half the pixel threshold)"}


def current_version(root: Path, line: str) -> str:
    """The version CURRENT names for `line`; BankError when the line has no bank."""
    check_name(line, "line")
    current = Path(root) / line / CURRENT_FILE
    try:
        version = current.read_text().strip()
    except FileNotFoundError:
        raise BankError(f"line '{line}' has no bank under {root} (no {current}); train one with `patchline train`.") from None
    if not version or "/" in version or version.startswith("."):
        raise BankError(f"{current} does not name a bank version (it holds {version!r}).")
    return version


def read_meta(version_dir: Path) -> BankMeta:
    """Parse and check a version folder's bank.json; BankError naming the file and field otherwise."""
    meta_path = version_dir / META_FILE
    try:
        data = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise BankError(f"bank {version_dir} has no {META_FILE}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BankError(f"{meta_path} is not valid JSON ({exc}); the bank is corrupt, retrain the line.") from None
    return BankMeta.parse(data, str(meta_path))


def load_bank(root: Path, line: str, version: str | None = None, expected: Mapping | None = None,
              layer_channels: Mapping[str, int] | None = None) -> Bank:
    """Load `line`'s CURRENT (or the given) bank version, verified against its bank.json.

    Checks the index file's sha256, vector count and dimension against bank.json, then that the
    bank fits `expected` settings and `layer_channels` (BankMeta.check_fits). Raises BankError
    with one sentence on any problem.
    """
    version = version or current_version(root, line)
    version_dir = Path(root) / line / version
    if not version_dir.is_dir():
        raise BankError(f"bank version {version_dir} does not exist.")
    meta = read_meta(version_dir)
    if meta.line != line or meta.version != version:
        raise BankError(f"{version_dir / META_FILE} describes bank {meta.name}, not {line}/{version}.")
    index_path = version_dir / INDEX_FILE
    index = _read_checked_index(index_path, meta.index_sha256, f"bank {version_dir} has no {INDEX_FILE}.")
    if index.d != meta.embedding_dim or index.ntotal != meta.n_patches:
        raise BankError(
            f"{index_path} holds {index.ntotal} × {index.d} vectors but {META_FILE} says "
            f"{meta.n_patches} × {meta.embedding_dim}."
        )
    meta.check_fits(expected, layer_channels)
    return Bank(index=index, meta=meta, path=version_dir, graph=_read_search_index(version_dir, meta, index))


def _read_search_index(version_dir: Path, meta: BankMeta, index: faiss.Index) -> faiss.Index | None:
    if meta.search["kind"] != "hnsw":
        return None
    path = version_dir / meta.search["file"]
    graph = _read_checked_index(path, meta.search["index_sha256"],
                                f"bank {version_dir} has no {meta.search['file']} (its search index).")
    if graph.ntotal != index.ntotal or graph.d != index.d:
        raise BankError(f"{path} holds {graph.ntotal} × {graph.d} vectors but the bank {index.ntotal} × {index.d}.")
    return graph


def _read_checked_index(path: Path, sha256: str, missing: str) -> faiss.Index:
    """A faiss index file whose sha256 bank.json records; BankError (`missing` when absent)."""
    if not path.is_file():
        raise BankError(missing)
    if sha256_file(path) != sha256:
        raise BankError(f"{path} does not match the checksum in {META_FILE}: the file is damaged or half-written.")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise BankError(f"faiss cannot read {path}: {str(exc).splitlines()[0]}.") from None
