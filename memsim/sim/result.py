"""What a simulation reports, and how it is written next to its resolved config."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from memsim.core.files import atomic_write_texts
from memsim.core.units import format_bytes


@dataclass(frozen=True)
class Result:
    """Decode throughput, its time breakdown, traffic, cache behaviour and DRAM use.

    Per-token means unless the name says otherwise. `breakdown_s` attributes each token's
    critical path to flash / dram / compute / stall (they sum to time_per_token_s);
    `busy_s` is how long each resource worked per token (overlap makes their sum exceed the
    step time).
    """

    hw_name: str
    model_name: str
    method: str
    trace_source: str
    mode: str  # "event" (SimPy engine) or "analytic" (the authors' closed form)
    num_tokens: int
    num_sequences: int
    tokens_per_s: float  # mean over sequences of tokens / decode time, as the authors do
    time_per_token_s: float
    ttft_s: float  # prefill of the prompt (or the first decode step if there is no prompt)
    breakdown_s: dict[str, float]
    busy_s: dict[str, float]
    flash_bytes_per_token: float  # payload the masks need from flash
    flash_device_bytes_per_token: float  # what the device reads (whole pages, merged gaps)
    flash_requests_per_token: float  # read requests issued (memsim/sim/flash_reads.py)
    flash_payload_bytes_total: float  # over all tokens
    flash_device_bytes_total: float
    flash_requests_total: float
    effective_flash_bandwidth_Bps: float | None  # payload / flash busy time (None: analytic)
    dram_read_bytes_per_token: float
    dram_write_bytes_per_token: float
    ops_per_token: float
    hit_rate: float  # fraction of requested MLP columns served from DRAM
    hit_rate_per_layer: dict[str, list[float]]  # per mask group, (L,)
    dram_used_bytes: float
    dram_used_breakdown_bytes: dict[str, float]  # resident_weights, cache, kv
    cache_capacity_columns: dict[str, list[int]]  # per mask group, (L,)
    energy_per_token_J: float | None
    # over time (memsim/sim/over_time.py). Both are decode tokens / their summed decode time
    # (prefills, think time and idle gaps excluded). burst: tokens 33-64 of the run (the 32
    # after a warm-up of 32 that fills the DRAM cache from cold; a shorter run: its last 32,
    # or all); sustained: the last tokens whose decode time adds up to 60 s (the token that
    # crosses 60 s included; all tokens when the run decoded for less). TTFT per turn of a
    # session (one entry otherwise).
    burst_tokens_per_s: float
    sustained_tokens_per_s: float
    latency_p50_s: float
    latency_p99_s: float
    ttft_per_turn_s: list[float]
    time_to_first_throttle_s: float | None  # None: never throttled, or no thermal model
    peak_temperature_C: float | None  # None: no thermal model
    # the longest time a request of any process (decode, prefills, apps) waited between its
    # issue, when its speed is read, and its start, per resource (flash, dram, compute);
    # None: the compiled path or the closed form (the speed never changes there)
    longest_queue_wait_s: dict[str, float] | None
    # with a thermal model: how often the governor changed step, and an upper bound of the
    # work time that pricing each request at its start instead of its issue would move (the
    # work queued on a rescaled resource at each change x the relative change of duration;
    # memsim/sim/thermal.py); None: no thermal model
    throttle_step_changes: int | None
    repricing_bound_s: float | None
    simulated_time_s: float  # the run's clock at its end (prefills, think time included)
    session: str | None
    background: list[str]  # names of the apps that ran beside the model
    per_token: dict[str, list[float]] = field(repr=False)  # time_s, breakdown, clock, (T,)
    # what the DRAM plan decided beyond byte counts (memsim/sim/plan.py DramPlan.notes): a
    # hybrid placement's resident MLP bytes, a sliding window's peak and whether it was capped
    plan_notes: dict[str, str] = field(default_factory=dict)

    def summary_rows(self) -> list[tuple[str, str]]:
        """Human-readable (label, value) pairs for the CLI table; sizes in MB below 1 GB,
        GB above (memsim.core.units), as in the sweep's table and figures."""
        rows = [("hardware", self.hw_name), ("model", self.model_name),
                ("method", self.method), ("trace", self.trace_source or "-"),
                ("mode", self.mode), ("tokens", f"{self.num_tokens} in {self.num_sequences} seq"),
                ("tokens/s", f"{self.tokens_per_s:.3f}"),
                ("time/token", f"{self.time_per_token_s * 1e3:.3f} ms"),
                ("time to first token", f"{self.ttft_s * 1e3:.3f} ms")]
        if self.mode == "analytic":  # the closed form has no timeline to split
            rows.append(("breakdown", "n/a (analytic mode has no timeline)"))
        else:
            rows += [(f"  {k}", f"{v * 1e3:.3f} ms") for k, v in self.breakdown_s.items()]
        rows += [("flash read/token", f"{format_bytes(self.flash_bytes_per_token)} payload, "
                                      f"{format_bytes(self.flash_device_bytes_per_token)} "
                                      "from the device"),
                 ("flash requests/token", f"{self.flash_requests_per_token:,.1f}")]
        if self.effective_flash_bandwidth_Bps is not None:
            rows.append(("effective flash bandwidth",
                         f"{self.effective_flash_bandwidth_Bps / 1e9:.3f} GB/s"))
        rows += [("DRAM read/token", format_bytes(self.dram_read_bytes_per_token)),
                 ("cache hit rate", f"{self.hit_rate:.4f}"),
                 ("DRAM used", format_bytes(self.dram_used_bytes))]
        if self.energy_per_token_J is not None:
            rows.append(("energy/token", f"{self.energy_per_token_J * 1e3:.3f} mJ"))
        rows += [(f"plan: {k}", v) for k, v in self.plan_notes.items()]
        return rows + self._over_time_rows()

    def _over_time_rows(self) -> list[tuple[str, str]]:
        """Speed over time, shown when something changes with time (a session, heat,
        another app)."""
        if self.session is None and self.peak_temperature_C is None and not self.background:
            return []
        throttle = ("never" if self.time_to_first_throttle_s is None
                    else f"{self.time_to_first_throttle_s:.1f} s")
        rows = [("session", self.session or "-"),
                ("background apps", ", ".join(self.background) or "-"),
                ("simulated time", f"{self.simulated_time_s:.1f} s"),
                ("burst tokens/s", f"{self.burst_tokens_per_s:.3f}"),
                ("sustained tokens/s", f"{self.sustained_tokens_per_s:.3f}"),
                ("latency p50 / p99", f"{self.latency_p50_s * 1e3:.3f} / "
                                      f"{self.latency_p99_s * 1e3:.3f} ms"),
                ("TTFT per turn", ", ".join(f"{t * 1e3:.1f}" for t in self.ttft_per_turn_s[:8])
                 + (" ..." if len(self.ttft_per_turn_s) > 8 else "") + " ms")]
        if self.peak_temperature_C is not None:
            rows += [("peak temperature", f"{self.peak_temperature_C:.1f} C"),
                     ("first throttle", throttle),
                     ("throttle step changes", f"{self.throttle_step_changes}, repricing "
                                               f"bound {self.repricing_bound_s * 1e3:.3f} ms")]
        if self.longest_queue_wait_s is not None:
            rows.append(("longest queue wait", ", ".join(
                f"{k} {v * 1e3:.3f} ms" for k, v in self.longest_queue_wait_s.items())))
        return rows

    def to_dict(self) -> dict:
        return asdict(self)


def write_result(result: Result, out_dir: str | Path, resolved_config: dict) -> Path:
    """result.json, per_token.csv and resolved_config.yaml in out_dir (result.json last);
    if one cannot be written (a full disk), those written before it are removed too."""
    out = Path(out_dir)
    summary = {k: v for k, v in result.to_dict().items() if k != "per_token"}
    rows = np.column_stack([np.arange(result.num_tokens)] + list(map(np.asarray,
                                                                 result.per_token.values())))
    lines = [",".join(["token"] + list(result.per_token))]
    lines += [",".join([str(int(r[0]))] + [repr(float(x)) for x in r[1:]]) for r in rows]
    atomic_write_texts([(out / "resolved_config.yaml",
                         yaml.safe_dump(resolved_config, sort_keys=False)),
                        (out / "per_token.csv", "\n".join(lines) + "\n"),
                        (out / "result.json", json.dumps(summary, indent=2))])
    return out / "result.json"


def read_per_token_csv(path: str | Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
