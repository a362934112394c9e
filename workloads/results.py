"""What an evaluation returns and writes: perplexity, MLP density, the trace, the config.

Files in the output folder, each written atomically (temp file + rename, so a crash never
leaves half a file): `results.json` (figures), `config.json` (the resolved configuration),
`trace.npz` (memsim's trace format) and, for DIP-CA, `cache_hits.npz` (hits per token, group
and layer as the masking saw them; memsim's replay of the trace must give the same).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memsim.core.files import atomic_write_with, check_output_dir
from memsim.traces import Trace


@dataclass(frozen=True)
class EvalResult:
    """Perplexity and density of one (model, method, windows) evaluation."""

    perplexity: float
    nll_per_token: float  # mean NLL of the scored tokens, nats
    num_scored_tokens: int  # (window_len - 1) per window
    mlp_density: float  # mean over tokens and layers of the fraction of MLP weights read
    mlp_density_per_layer: list[float]  # (L,)
    window_perplexity: list[float]  # per window, in window order
    trace: Trace
    config: dict  # the resolved configuration (also config.json)
    wall_s: float  # load_s + eval_s: the whole call
    cache_hits: np.ndarray | None = None  # (T, G, L) int64, DIP-CA only (G: up_gate, down)
    cache_hit_rate: dict | None = None  # group -> hits / requested columns, DIP-CA only
    load_s: float = 0.0  # loading the model, adapter and corpus: those not passed in loaded
    eval_s: float = 0.0  # calibration and scoring, the rest of wall_s

    def summary(self) -> dict:
        """The JSON-able figures (results.json)."""
        return {"method": self.trace.method, "perplexity": self.perplexity,
                "nll_per_token": self.nll_per_token,
                "num_scored_tokens": self.num_scored_tokens,
                "mlp_density": self.mlp_density,
                "mlp_density_per_layer": self.mlp_density_per_layer,
                "cache_hit_rate": self.cache_hit_rate,
                "window_perplexity": self.window_perplexity, "wall_s": self.wall_s,
                "load_s": self.load_s, "eval_s": self.eval_s}

    def save(self, out_dir: str | Path) -> Path:
        """Write every result file into `out_dir` (created if missing)."""
        out = check_output_dir(out_dir, "out_dir")  # a ConfigError naming it if unwritable
        self.trace.save(out / "trace.npz")  # atomic in memsim.Trace.save
        if self.cache_hits is not None:
            write_atomic(out / "cache_hits.npz", lambda fh: np.savez_compressed(
                fh, cache_hits=self.cache_hits, groups=np.array(["up_gate", "down"])))
        write_json(out / "config.json", self.config)
        write_json(out / "results.json", self.summary())  # last: its presence means done
        return out


def write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2) + "\n"  # an overflowed perplexity is Infinity
    write_atomic(path, lambda fh: fh.write(text.encode()))


def write_atomic(path: Path, write) -> None:
    """`write(file)` into a temp file beside `path`, then rename over it; a failed write
    (a full disk) leaves nothing and is a ConfigError naming `path`."""
    atomic_write_with(path, write)
