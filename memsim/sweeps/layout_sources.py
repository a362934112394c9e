"""Flash layouts a sweep builds itself (`layout.method` in a sweep file).

A point with `layout.method: frequency` (or any registered method) gets a layout built from
calibration windows: a model trace of the same model, corpus and masking on another split
(`layout.split`, default `train`: whole other plays for Shakespeare), so the layout never
sees the windows it is evaluated on. DIP-CA's calibration trace is plain DIP's at the same
density: its masks are DIP's ranking biased by what happens to be cached, while a layout
belongs to the model's columns, and sharing one calibration pass keeps the sweep short.
    traces/<calibration trace id>/   the calibration trace (made like any trace)
    layouts/<layout id>/layout.npz   built from it (written atomically: the done marker)
"""
from __future__ import annotations

from pathlib import Path

from memsim.core.errors import ConfigError
from memsim.hw.layouts import build_layout, load_layout
from memsim.sweeps.spec import SweepPoint, _digest
from memsim.sweeps.trace_sources import TRACE_FILE, _plain, trace_id
from memsim.traces.trace import Trace

LAYOUT_FILE = "layout.npz"


def calibration_job(point: SweepPoint) -> dict | None:
    """The trace job a point's layout is built from (None: the point builds no layout)."""
    s = point.spec
    if s.layout.method == "none":
        return None
    trace = {**_plain(s.trace), "split": s.layout.split, "windows": s.layout.windows}
    method, params = ("dip", {"density": s.density}) if s.method == "dip_ca" \
        else (s.method, point.method_params)
    return {"model": s.model, "trace": trace, "method": method, "params": params,
            "adapter": s.adapter}


def layout_job(point: SweepPoint) -> dict | None:
    """What decides a point's layout (its calibration trace and the method), or None."""
    calibration = calibration_job(point)
    if calibration is None:
        return None
    return {"calibration": trace_id(calibration), "method": point.spec.layout.method}


def layout_id(job: dict) -> str:
    return "l-" + _digest(job)


def build_layout_task(job: dict, trace_folder: str, folder: str) -> dict:
    """Task: build the layout from the calibration trace into `folder`/layout.npz."""
    trace_path = Path(trace_folder) / TRACE_FILE
    layout = build_layout(Trace.load(trace_path), job["method"], trace_path=str(trace_path))
    path = layout.save(Path(folder) / LAYOUT_FILE)
    return {"layout": str(path)}


def damaged_layout(path: Path) -> str | None:
    """Why a built layout cannot be used (unreadable, not a layout), or None."""
    try:
        load_layout(path)
    except ConfigError as exc:
        return str(exc)
    return None
