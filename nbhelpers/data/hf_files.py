"""Finding a Hugging Face dataset's files on this machine, in the forms users have them.

The real text loaders (sentiment, language modelling, and the tasks to come) share this
lookup, so that a dataset fetched once, by whatever means, is found without a network.

Folder layouts, looked for in a folder such as `<data_dir>/sst2` (`find_split_files`):

    <split>.parquet                               the project's own layout
    data/<split>-00000-of-00001.parquet           a hub snapshot (huggingface-cli download
    <config>/<split>-00000-of-00001.parquet         --local-dir ...): one folder per config,
    <config>/<split>/0000.parquet                   or the hub's parquet conversion
    (several shards of one split are read in order; "validation" is also found as "valid"
    and "dev")

Caches, looked in before any download (`hub_cache_dir`, `datasets_cache_dirs`):

    $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
        datasets--<org>--<name>/snapshots/<revision>/...   huggingface_hub's snapshots:
        the revision refs/main points to, else the newest; read as a folder (above)
    <data_dir>/huggingface, then $HF_DATASETS_CACHE, else $HF_HOME/datasets
        what datasets.load_dataset(..., cache_dir=...) prepared (Arrow files), read by
        `load_cached` with the hub switched off

API:
    find_split_files(folder, splits, config=None) -> {split: [parquet files]} | None
    hub_snapshots(repo_id) -> [snapshot folders], the current one first
    find_in_hub_cache(repo_ids, splits, config=None) -> {split: [files]} | None
    datasets_cache_dirs(data_dir) -> [folders load_cached tries, in order]
    load_cached(repo_id, config, cache_dirs) -> a DatasetDict read offline | None
    offline() -> a context in which `datasets` reads only its cache
    hub_unreachable_reason(timeout) -> None if the hub answers, else why not
    describe_layouts(splits, config=None) -> the file patterns above, for error messages
    read_parquet(files) -> one pyarrow Table of the shards

Every environment variable is read when a function is called, not at import, so a test
(or a notebook) that sets HF_HOME afterwards is honoured.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import urlparse

# Other names the published files give a split.
SPLIT_ALIASES = {"validation": ("validation", "valid", "dev"), "train": ("train",), "test": ("test",)}
OFFLINE_ENV = ("NBHELPERS_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def split_names(split: str) -> tuple[str, ...]:
    return SPLIT_ALIASES.get(split, (split,))


# --------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------

def _shards(folder: Path, split: str) -> list[Path]:
    """Parquet files of one split in one folder: <split>.parquet or <split>-*.parquet shards."""
    for name in split_names(split):
        single = folder / f"{name}.parquet"
        if single.is_file():
            return [single]
        shards = sorted(folder.glob(f"{name}-*.parquet"))
        if shards:
            return shards
        nested = folder / name  # the parquet conversion: <config>/<split>/0000.parquet
        if nested.is_dir():
            shards = sorted(nested.glob("*.parquet"))
            if shards:
                return shards
    return []


def _all_splits(folder: Path, splits: Sequence[str]) -> dict[str, list[Path]] | None:
    if not folder.is_dir():
        return None
    found = {split: _shards(folder, split) for split in splits}
    return found if all(found.values()) else None


def find_split_files(folder: Path, splits: Sequence[str], config: str | None = None) -> dict[str, list[Path]] | None:
    """The parquet files of every split in one of the layouts above, or None.

    With `config`, the <config>/ subfolder is tried; without it (or when it is missing)
    a single subfolder that holds all splits is accepted too.
    """
    folder = Path(folder)
    for candidate in (folder, folder / "data", *([folder / config] if config else [])):
        found = _all_splits(candidate, splits)
        if found:
            return found
    if folder.is_dir():
        subfolders = [sub for sub in sorted(folder.iterdir()) if sub.is_dir() and not sub.name.startswith(".")]
        hits = [found for found in (_all_splits(sub, splits) for sub in subfolders) if found]
        if len(hits) == 1:  # several configs and none named: do not guess
            return hits[0]
    return None


def describe_layouts(splits: Sequence[str], config: str | None = None) -> str:
    """The layouts find_split_files accepts, as file patterns (for "looked for ..." sentences)."""
    first = splits[0]
    where = f"{config}/" if config else "<config>/"
    return (f"{' and '.join(f'{s}.parquet' for s in splits)}, data/{first}-00000-of-00001.parquet, "
            f"{where}{first}-00000-of-00001.parquet or {where}{first}/0000.parquet")


def read_parquet(files: Iterable[Path]):
    """The shards of one split as one pyarrow Table, in order."""
    import pyarrow as pa
    import pyarrow.parquet as pq  # ships with `datasets`
    tables = [pq.read_table(path) for path in files]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")


# --------------------------------------------------------------------------------------------
# Caches
# --------------------------------------------------------------------------------------------

def hf_home() -> Path:
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface"


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloaded repositories."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    return hf_home() / "hub"


def datasets_cache_dirs(data_dir: Path | None = None) -> list[Path]:
    """Where `datasets` may have prepared a dataset: our --data-dir's cache, then the user's."""
    user = (Path(os.environ["HF_DATASETS_CACHE"]).expanduser() if os.environ.get("HF_DATASETS_CACHE")
            else hf_home() / "datasets")
    dirs = ([Path(data_dir) / "huggingface"] if data_dir is not None else []) + [user]
    return list(dict.fromkeys(dirs))


def hub_snapshots(repo_id: str) -> list[Path]:
    """Snapshot folders of a dataset repository in the hub cache: refs/main's first, then newest first."""
    repo = hub_cache_dir() / f"datasets--{repo_id.replace('/', '--')}"
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return []
    found = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    main = repo / "refs" / "main"
    if main.is_file():
        current = snapshots / main.read_text().strip()
        if current in found:
            found.remove(current)
            found.insert(0, current)
    return found


def find_in_hub_cache(repo_ids: Iterable[str], splits: Sequence[str],
                      config: str | None = None) -> dict[str, list[Path]] | None:
    """The split files of the first cached snapshot (of any of `repo_ids`) that has them all."""
    for repo_id in repo_ids:
        for snapshot in hub_snapshots(repo_id):
            found = find_split_files(snapshot, splits, config)
            if found:
                return found
    return None


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Make `datasets` read only its cache (it reads HF_HUB_OFFLINE once, at import)."""
    import datasets.config
    import huggingface_hub.constants as hub_constants
    saved = datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def load_cached(repo_id: str, config: str | None, cache_dirs: Iterable[Path]) -> Any:
    """A DatasetDict that `datasets` prepared earlier in one of `cache_dirs`, read offline; or None."""
    try:
        import datasets
    except ImportError:
        return None
    for cache in cache_dirs:
        if not Path(cache).is_dir():
            continue
        datasets.logging.set_verbosity_error()  # "using the latest cached version" on every hit
        try:
            with offline():
                return datasets.load_dataset(repo_id, config, cache_dir=str(cache))
        except Exception:  # not cached there, half-written, another version: try the next
            continue
    return None


def hub_unreachable_reason(timeout: float = 3.0) -> str | None:
    """None when the Hugging Face hub looks reachable, else a short reason why not.

    Offline mode (NBHELPERS_OFFLINE, HF_HUB_OFFLINE and friends) counts as unreachable.
    Otherwise one TCP connection to the hub's host must open within `timeout` seconds; behind
    a proxy the check is left to the download itself, which goes through the proxy.
    """
    for name in OFFLINE_ENV:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{name} is set"
    if any(os.environ.get(name) for name in PROXY_ENV):
        return None
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        return f"cannot reach {host}: {error.strerror or type(error).__name__}"
    return None


__all__ = ["datasets_cache_dirs", "describe_layouts", "find_in_hub_cache", "find_split_files",
           "hf_home", "hub_cache_dir", "hub_snapshots", "hub_unreachable_reason", "load_cached",
           "offline", "read_parquet", "split_names"]
