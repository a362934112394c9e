"""A training run that lives in one output folder and resumes: shared by `memsim finetune`
(LoRA adapters) and `memsim train-predictor`.

The folder holds the run's settings (claimed on the first start, checked on every rerun),
while unfinished `checkpoints/step-NNNNNN/` (each written into a temp folder and renamed into
place, so a listed checkpoint is whole; older ones removed after), and when finished a
record file (the done marker) whose `config` must match the settings asked for. No torch here:
what goes into a checkpoint is the caller's.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from memsim.core.errors import ConfigError
from memsim.core.files import atomic_write_text, read_json

CHECKPOINTS = "checkpoints"


def identity_json(identity: dict) -> dict:
    """The settings as JSON reads them back (tuples become lists)."""
    return json.loads(json.dumps(identity))


def check_same_run(saved: dict, identity: dict, out: Path, what: str) -> None:
    """`saved` settings equal `identity`, or a ConfigError naming the first key that differs."""
    mine = identity_json(identity)
    for key in sorted(set(saved) | set(mine)):
        if saved.get(key) != mine.get(key):
            raise ConfigError(f"{out} holds a {what} with {key}={saved.get(key)!r}, not "
                              f"{mine.get(key)!r}", key_path=key,
                              allowed="the same settings (to resume), or another --out")


def finished_record(path: Path, identity: dict, not_identity: tuple[str, ...],
                    what: str) -> dict | None:
    """The record at `path` of a finished run of the same settings, or None if unfinished;
    a damaged record or one of other settings is a ConfigError naming it."""
    if not path.is_file():
        return None
    record = read_json(path, what=f"{what} record")
    if not isinstance(record.get("config"), dict):
        raise ConfigError("has no `config` mapping (damaged?)", source=str(path),
                          allowed="remove it to train again")
    saved = {k: v for k, v in record["config"].items() if k not in not_identity}
    check_same_run(saved, identity, path.parent, what)
    return record


def claim(path: Path, identity: dict, what: str) -> None:
    """Write the run's settings to `path`, or check they match the ones there."""
    if path.is_file():
        check_same_run(read_json(path, what="run settings"), identity, path.parent, what)
        return
    atomic_write_text(path, json.dumps(identity_json(identity), indent=2) + "\n")


def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest complete checkpoint folder (they appear only by rename), or None."""
    found = sorted((Path(out) / CHECKPOINTS).glob("step-*"))
    return found[-1] if found else None


def write_checkpoint(out: Path, state: dict, write_files: Callable[[Path], None]) -> Path:
    """`write_files(folder)` and progress.json (`state`) as checkpoint `state['step']`."""
    root = out / CHECKPOINTS
    final, tmp = root / f"step-{state['step']:06d}", root / f".step-{state['step']:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_files(tmp)
    (tmp / "progress.json").write_text(json.dumps(state))
    shutil.rmtree(final, ignore_errors=True)  # only after a crash between rename and cleanup
    tmp.rename(final)
    for old in root.glob("step-*"):
        if old != final:
            shutil.rmtree(old)
    return final


def read_progress(folder: Path) -> dict:
    """A checkpoint's progress, with its step added to the steps the run resumed at."""
    state = read_json(folder / "progress.json", what="checkpoint progress")
    state["resumed_at"] = [*state["resumed_at"], state["step"]]
    return state


def fresh_progress() -> dict:
    return {"step": 0, "losses": [], "wall_s": 0.0, "cpu_s": 0.0, "resumed_at": []}


def cosine_lr(peak: float, step: int, steps: int, warmup_steps: int = 0) -> float:
    """Learning rate of step `step` (0-based) of `steps`: linear warm-up over
    `warmup_steps`, then cosine decay from `peak` to `peak` / 10 at the last step."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, steps - 1 - warmup_steps))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def add_laps(state: dict, wall_since: float, cpu_since: float) -> None:
    """Training time so far: wall clock and this process's CPU time (all threads; on a
    shared machine the CPU time is the steadier figure)."""
    state["wall_s"] += time.perf_counter() - wall_since
    state["cpu_s"] += time.process_time() - cpu_since
