"""Files the user names: atomic writes, output locations checked before any work, reads that
fail with the file's name.

Every write goes to a temp file beside its target (`.NAME.PID.tmp`) and is renamed over it,
so a reader (or a resumed sweep) never sees half a file; if the write fails (a full disk, no
permission) the temp file is removed and a ConfigError names the file and the reason. A
killed writer can leave its temp file behind: `remove_stale_temp_files` drops them (every
temp name starts with "." and ends with ".tmp").
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from memsim.core.errors import ConfigError, OutputError

TEMP_SUFFIX = ".tmp"


def os_reason(exc: OSError) -> str:
    """A short reason for an OSError ("No space left on device (disk full)")."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        reason += " (disk full)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += " (no write permission)" if exc.errno != errno.EROFS else ""
    return reason


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


@contextmanager
def atomic_writer(path: str | Path, *, flag: str = "") -> Iterator[BinaryIO]:
    """`with atomic_writer(p) as fh: fh.write(...)`: p appears whole or not at all. A failure
    (OSError) leaves no temp file and becomes a ConfigError naming `path` (and `flag`, the
    option that chose it); any other exception also removes the temp file, then propagates."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        _make_parent(path, flag)
        with open(tmp, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise output_error(path, exc, flag) from None
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: Path) -> None:
    """Remove a temp file if it exists (its folder may not)."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


def atomic_write_bytes(path: str | Path, data: bytes, *, flag: str = "") -> None:
    with atomic_writer(path, flag=flag) as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str, *, flag: str = "") -> None:
    """Write via a temp file and rename: readers never see half a file."""
    atomic_write_bytes(path, text.encode("utf-8"), flag=flag)


def atomic_write_texts(items: list[tuple[Path, str]], *, flag: str = "") -> None:
    """Several files that belong together: all are written to temp files first, then renamed
    in order, so a failure (a full disk) leaves the previous set (or nothing), never part of
    a new one."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in items:
            path = Path(path)
            tmp = temp_path(path)
            staged.append((tmp, path))
            _make_parent(path, flag)
            with open(tmp, "wb") as fh:
                fh.write(text.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    except OSError as exc:
        for tmp, _ in staged:
            _discard(tmp)
        raise output_error(staged[-1][1], exc, flag) from None
    except BaseException:
        for tmp, _ in staged:
            _discard(tmp)
        raise


def atomic_write_with(path: str | Path, write: Callable[[BinaryIO], Any], *,
                      flag: str = "") -> None:
    """`write(file)` (e.g. np.savez, fig.savefig, pq.write_table) into `path`, atomically."""
    with atomic_writer(path, flag=flag) as fh:
        write(fh)


def output_error(path: Path, exc: OSError, flag: str = "") -> OutputError:
    """An OSError while writing `path`, as a ConfigError naming it and the reason (retryable
    when the disk was full)."""
    error = OutputError(f"cannot write it: {os_reason(exc)}", source=str(path),
                        key_path=flag, allowed="a writable folder with free space")
    error.retryable = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return error


def npz_path(path: str | Path) -> Path:
    """The file a `save(path)` of an .npz format writes: `path`, with .npz added unless it
    has it (a folder is returned as it is, for the caller to refuse)."""
    path = Path(path)
    return path if path.suffix == ".npz" or is_folder(path) else path.with_suffix(".npz")


def is_folder(path: str | Path) -> bool:
    """Path.is_dir() that answers False where it may not look (a folder without search
    permission raises PermissionError in Path.is_dir)."""
    try:
        return Path(path).is_dir()
    except OSError:
        return False


def _make_parent(path: Path, flag: str) -> None:
    """Checks of `atomic_writer` (its OSErrors become an OutputError there)."""
    if path.is_dir():
        raise ConfigError("cannot write a file here: it is a folder", source=str(path),
                          key_path=flag, allowed="a file path")
    _refuse_file_in_path(path.parent, path, flag)
    path.parent.mkdir(parents=True, exist_ok=True)


def _refuse_file_in_path(folder: Path, path: Path, flag: str) -> None:
    """A ConfigError if `folder` or its nearest existing ancestor is a file."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise ConfigError(f"cannot write here: {candidate} is a file, not a folder",
                                  source=str(path), key_path=flag,
                                  allowed="a path inside a folder")
            return


# ------------------------------------------------------------------ output locations
def check_output_dir(path: str | Path, flag: str = "--out", create: bool = True) -> Path:
    """Make sure `path` is (or can become) a writable folder, before any work is done; a
    ConfigError names the path, the flag and why not. Creates the folder (`create`), or
    else checks that its nearest existing ancestor is writable (so that a command refusing
    other input later leaves nothing behind)."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise ConfigError("exists and is a file, not a folder", source=str(path),
                              key_path=flag, allowed="a folder (new or existing)")
        _refuse_file_in_path(path.parent, path, flag)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        _probe_writable(next(p for p in (path, *path.parents) if p.exists()))
    except OSError as exc:  # no permission to look or write, a read-only disk, ...
        raise ConfigError(f"cannot write into {path}: {os_reason(exc)}", source=str(path),
                          key_path=flag, allowed="a writable folder") from None
    return path


def check_output_file(path: str | Path, flag: str = "--out") -> Path:
    """Make sure the file `path` can be written (its folder exists or can be made, and is
    writable; `path` is not a folder), before any work is done."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ConfigError("is a folder", source=str(path), key_path=flag,
                              allowed="a file path")
        _refuse_file_in_path(path.parent, path, flag)
        path.parent.mkdir(parents=True, exist_ok=True)
        _probe_writable(path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write into {path.parent}: {os_reason(exc)}",
                          source=str(path), key_path=flag, allowed="a writable folder") from None
    return path


def _probe_writable(folder: Path) -> None:
    """Create and remove a temp file: the only test that also holds for root, ACLs, and
    read-only mounts (os.access does not)."""
    probe = folder / f".memsim-probe.{os.getpid()}{TEMP_SUFFIX}"
    with open(probe, "wb"):
        pass
    probe.unlink()


def remove_stale_temp_files(folder: str | Path, max_depth: int = 2) -> int:
    """Delete the temp files (and temp folders) killed writers left in `folder` and up to
    `max_depth` levels below it (a sweep writes at OUT, OUT/plots and OUT/points/<id>:
    depth 2), and nowhere deeper, so an --out pointed at a folder of other things cannot
    reach them; how many were removed."""
    import shutil

    root = Path(folder)
    if not is_folder(root):
        return 0
    count = 0
    patterns = ["/".join(["*"] * depth + [f".*{TEMP_SUFFIX}"]) for depth in range(max_depth + 1)]
    for tmp in sorted({p for pattern in patterns for p in root.glob(pattern)},
                      key=lambda p: -len(p.parts)):
        try:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
            count += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ConfigError(f"cannot remove the stale temp file {tmp}: {os_reason(exc)}",
                              source=str(root)) from None
    return count


# ------------------------------------------------------------------ reading
def as_path(value: Any, what: str, key_path: str = "",
            error: type[ConfigError] = ConfigError) -> Path:
    """`value` as a Path, or an `error` if it is not a path at all (a number, None)."""
    if isinstance(value, (str, os.PathLike)) and str(value):
        return Path(value)
    raise error(f"expected the path of a {what}, got {type(value).__name__} "
                f"{value!r}"[:200], key_path=key_path, allowed=f"a {what} path")


def read_text(path: str | Path, *, what: str = "file", flag: str = "") -> str:
    """A UTF-8 text file, or a ConfigError naming it (missing, unreadable, not UTF-8)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else os_reason(exc)
        raise ConfigError(f"cannot read the {what}: {reason}", source=str(path),
                          key_path=flag) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the {what} is not UTF-8 text (byte {exc.start}); damaged?",
                          source=str(path), key_path=flag, allowed="UTF-8 text") from None


def read_json(path: str | Path, *, what: str = "JSON file", kind: type | None = dict) -> Any:
    """A JSON file (checked to hold a `kind`), or a ConfigError naming it."""
    text = read_text(path, what=what)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"the {what} is not valid JSON ({exc}); damaged?", source=str(path),
                          allowed="JSON") from None
    if kind is not None and not isinstance(data, kind):
        raise ConfigError(f"the {what} holds a {type(data).__name__}, not a "
                          f"{'JSON object' if kind is dict else kind.__name__}",
                          source=str(path)) from None
    return data


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (streamed)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# ------------------------------------------------------------------ memory
def physical_memory_bytes() -> int | None:
    """This machine's RAM (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(num_bytes: float, what: str, *, key_path: str, source: str = "<cli>",
                         per_unit_bytes: float | None = None) -> None:
    """Refuse, before allocating, an array that cannot fit in this machine's memory;
    `per_unit_bytes` (bytes per unit of `key_path`) gives the largest value that fits."""
    total = physical_memory_bytes()
    if total is None or num_bytes <= total:
        return
    allowed = f"at most {int(total // per_unit_bytes):,}" if per_unit_bytes else ""
    raise ConfigError(f"{what} would need {num_bytes / 1e9:,.1f} GB of memory; this machine "
                      f"has {total / 1e9:,.1f} GB", source=source, key_path=key_path,
                      allowed=allowed)
