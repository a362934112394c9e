"""`workloads.evaluate(...)`: perplexity, MLP density and the trace of one masked model run.

Flow: load the model -> build the mask generator (its parameters checked) -> draw windows ->
calibrate thresholds if the method has any (on `calibration_split`, default `train`) ->
score each window (teacher-forced, caches cold per window) -> one memsim.Trace with one
sequence per window -> results written atomically beside the resolved config.
Same arguments and seed give the same numbers (windows drawn by numpy's seeded generator,
torch seeded, no random ops in the forward pass).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from memsim.core.errors import ConfigError
from memsim.traces import MaskGroup, Trace
from workloads.corpus import SHAKESPEARE, Corpus, Windows, load_corpus, make_windows
from workloads.lora import adapter_param_count, check_adapter_dir, with_adapter
from workloads.masks import MASKS, MaskGenerator, build_generator, keep_to_k
from workloads.masks.base import parse_params
from workloads.masks.dip import resolve_keeps
from workloads.model import DEFAULT_MODEL, LoadedModel, load_model
from workloads.perplexity import WindowResult, calibrate, perplexity, score_window
from workloads.results import EvalResult

CACHE_KEYS = ("cache_policy", "cache_fraction", "up_gate_capacity", "down_capacity")
CACHE_AWARE_METHODS = ("dip_ca", "dip_ra")  # masks that read memsim's cache (and flash)


@dataclass(frozen=True)
class EvalConfig:
    """Everything that decides an evaluation's numbers (written to config.json)."""

    model: str = DEFAULT_MODEL  # preset name or local path
    method: str = "dense"
    method_params: dict = dataclasses.field(default_factory=dict)  # as given
    corpus: str = SHAKESPEARE
    split: str | None = None  # None: `test` if the corpus has it, else its first split
    text_column: str = "text"  # saved HF datasets only
    num_windows: int = 16  # 16 x 256 tokens: a few seconds per method on SmolLM2, 2 cores
    window_len: int = 256
    stride: int | None = None  # None: window_len (non-overlapping candidates)
    seed: int = 0
    calibration_windows: int = 8  # threshold methods only (cats, dip mode=threshold)
    calibration_split: str | None = None  # None: `train` if present, else the eval split
    hw: str | None = None  # hardware preset/YAML: sets DIP-CA's cache policy and capacities
    dtype: str = "float32"
    adapter: str | None = None  # LoRA adapter folder (workloads.lora), None = base model

    def __post_init__(self) -> None:
        for key, low in (("num_windows", 1), ("window_len", 2), ("calibration_windows", 1)):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < low:
                raise ConfigError(f"must be an integer >= {low}, got {getattr(self, key)!r}",
                                  key_path=key, allowed=f">= {low}")
        if self.stride is not None and (not isinstance(self.stride, int) or self.stride < 1):
            raise ConfigError(f"must be an integer >= 1, got {self.stride!r}",
                              key_path="stride", allowed=">= 1")


def evaluate(model: str | LoadedModel = DEFAULT_MODEL, method: str = "dense",
             params: dict | None = None, *, corpus: str | Corpus = SHAKESPEARE,
             windows: int = 16, window_len: int = 256, stride: int | None = None,
             seed: int = 0, split: str | None = None, calibration_windows: int = 8,
             calibration_split: str | None = None, text_column: str = "text",
             hw: str | None = None, dtype: str = "float32", out_dir: str | Path | None = None,
             progress: bool = True, adapter: str | Path | None = None) -> EvalResult:
    """Evaluate `method` on `model`; see EvalConfig for the arguments. `model` and `corpus`
    may be already-loaded objects (to reuse them across runs); a LoadedModel that already
    carries an adapter (workloads.lora.with_adapter) is evaluated with it. `adapter` puts
    one on (a copy of) the model. Writes files if `out_dir`."""
    config = EvalConfig(model=model.name if isinstance(model, LoadedModel) else str(model),
                        method=method, method_params=dict(params or {}),
                        corpus=corpus.name if isinstance(corpus, Corpus) else str(corpus),
                        split=split, text_column=text_column, num_windows=windows,
                        window_len=window_len, stride=stride, seed=seed,
                        calibration_windows=calibration_windows,
                        calibration_split=calibration_split, hw=hw, dtype=dtype,
                        adapter=_adapter_path(model, adapter))
    # cheap checks first: a typo should not wait for a model to load
    method_cls = MASKS.get(method, key_path="method")
    method_cls.check_params(parse_params(method_cls.Params, config.method_params, method),
                            config.model)
    start = time.perf_counter()
    loaded = (model if isinstance(model, LoadedModel)
              else load_model(config.model, dtype, progress=progress))
    if adapter is not None:
        loaded = with_adapter(loaded, adapter)
    text = corpus if isinstance(corpus, Corpus) else load_corpus(corpus, text_column)
    load_s = time.perf_counter() - start
    result = run(config, loaded, text, progress)
    result = dataclasses.replace(result, load_s=load_s, wall_s=load_s + result.eval_s)
    if out_dir is not None:
        result.save(out_dir)
    return result


def _adapter_path(model: str | LoadedModel, adapter: str | Path | None) -> str | None:
    """The adapter folder to record: the one given (checked now, before any model loads),
    else the one a given LoadedModel already carries."""
    if adapter is not None:
        return str(check_adapter_dir(adapter))
    if isinstance(model, LoadedModel):
        return (model.source.get("adapter") or {}).get("path")
    return None


def run(config: EvalConfig, loaded: LoadedModel, corpus: Corpus, progress: bool) -> EvalResult:
    """The evaluation proper, on a loaded model and corpus."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    params = cache_params_from_hw(config, loaded) if config.hw else config.method_params
    generator = build_generator(config.method, params, loaded.shape)
    split = config.split or corpus.default_split("test")
    generator.check_eval_data(corpus.name, split)
    windows = make_windows(corpus, split, loaded.tokenizer, config.window_len,
                           config.num_windows, config.seed, config.stride)
    calibration = _calibrate(config, loaded, corpus, generator, windows)
    scored = [score_window(loaded, generator, ids)
              for ids in tqdm(windows.ids, desc=f"eval {config.method}", unit="window",
                              disable=not progress, leave=False)]
    eval_s = time.perf_counter() - start
    trace = _trace(loaded, generator, scored)
    resolved = _resolved_config(config, loaded, corpus, windows, generator, calibration)
    return _result(scored, trace, resolved, eval_s)


def _calibrate(config: EvalConfig, loaded: LoadedModel, corpus: Corpus,
               generator: MaskGenerator, scored: Windows) -> dict | None:
    """Fit thresholds if the method has any, on windows disjoint from the `scored` ones
    (another split, or the same split without the scored windows' tokens: a single .txt
    has only `all`); what was used, for config.json."""
    if not generator.needs_calibration:
        return None
    split = config.calibration_split or corpus.default_split("train")
    same = split == scored.split
    windows = make_windows(corpus, split, loaded.tokenizer, config.window_len,
                           config.calibration_windows, config.seed + 1, config.stride,
                           exclude=scored if same else None)
    calibrate(loaded, generator, windows.ids)
    return {"split": split, "num_windows": len(windows.starts), "seed": config.seed + 1,
            "windows": windows.starts, "is_eval_split": same, "disjoint_from_eval": True,
            "source": calibration_source(split, scored.split, same)}


def calibration_source(split: str, eval_split: str, same: bool) -> str:
    """Where calibration came from, in words (config.json)."""
    if same:
        return (f"split {split!r}, the evaluated split itself: windows drawn among those "
                "that share no token with an evaluated window")
    return f"split {split!r}, disjoint from the evaluated split {eval_split!r}"


def _trace(loaded: LoadedModel, generator: MaskGenerator, scored: list[WindowResult]) -> Trace:
    """One trace, one sequence per window, in memsim's format."""
    lengths = [w.num_scored + 1 for w in scored]
    ups = None if all(w.up is None for w in scored) else [w.up for w in scored]
    downs = None if all(w.down is None for w in scored) else [w.down for w in scored]
    H, I = loaded.shape.hidden_size, loaded.shape.intermediate_size
    up = None if ups is None else np.concatenate(
        [u if u is not None else _ones(n, loaded, H) for u, n in zip(ups, lengths)])
    down = None if downs is None else np.concatenate(
        [d if d is not None else _ones(n, loaded, I) for d, n in zip(downs, lengths)])
    return Trace(model=loaded.shape, method=generator.name,
                 method_params=generator.resolved_params(), prompt_len=0,
                 sequence_lengths=tuple(lengths), source="workloads",
                 adapter_params=adapter_param_count(loaded.model),
                 **generator.trace_masks(sum(lengths), up, down), **generator.trace_fields())


def _ones(num_tokens: int, loaded: LoadedModel, width: int) -> np.ndarray:
    return np.ones((num_tokens, loaded.shape.num_hidden_layers, width), bool)


def _result(scored: list[WindowResult], trace: Trace, config: dict, eval_s: float) -> EvalResult:
    nll = sum(w.nll_sum for w in scored)
    count = sum(w.num_scored for w in scored)
    density = trace.mlp_density()  # (T, L)
    hits, rates = None, None
    if scored[0].stats.get("cache_hits") is not None:
        hits = np.concatenate([w.stats["cache_hits"] for w in scored])  # (T, G, L)
        rates = {g.name: float(hits[:, i].sum() / max(1, g.bits.counts().sum()))  # up_gate, down
                 for i, g in enumerate(trace.groups())}
    return EvalResult(perplexity=perplexity(nll, count), nll_per_token=nll / count,
                      num_scored_tokens=count, mlp_density=float(density.mean()),
                      mlp_density_per_layer=density.mean(axis=0).tolist(),
                      window_perplexity=[perplexity(w.nll_sum, w.num_scored) for w in scored],
                      trace=trace, config=config, wall_s=eval_s, eval_s=eval_s,
                      cache_hits=hits, cache_hit_rate=rates)


def _resolved_config(config: EvalConfig, loaded: LoadedModel, corpus: Corpus,
                     windows: Windows, generator: MaskGenerator,
                     calibration: dict | None) -> dict:
    import transformers  # only for its version string

    return {**dataclasses.asdict(config), "split": windows.split,
            "stride": config.stride or config.window_len,
            "resolved_method_params": generator.resolved_params(),
            "model_shape": loaded.shape.to_dict(), "model_source": loaded.source,
            "adapter_params": adapter_param_count(loaded.model),
            "corpus_info": corpus.info, "windows": windows.starts,
            "num_candidate_windows": windows.num_candidates, "calibration": calibration,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}


# ---------------------------------------------------------------- hardware -> DIP-CA cache
def cache_params_from_hw(config: EvalConfig, loaded: LoadedModel) -> dict:
    """DIP-CA's (and DIP-RA's) cache policy and per-layer capacities from a hardware config
    (memsim's DRAM plan, PAPER.md section 4), and DIP-RA's flash; other methods only record
    `hw`."""
    params = dict(config.method_params)
    if config.method not in CACHE_AWARE_METHODS:
        return params
    clash = [k for k in CACHE_KEYS if params.get(k) is not None]
    if config.method == "dip_ra" and params.get("flash_hw") is not None:
        clash.append("flash_hw")
    if clash:
        raise ConfigError("--hw sets the cache policy and capacities (and dip_ra's flash); "
                          "drop this parameter",
                          key_path=f"{config.method}.{clash[0]}",
                          allowed="hw or explicit cache params")
    from memsim.hw import load_hw
    from memsim.sim import cache_capacities, kv_budget_tokens

    hw = load_hw(config.hw)
    groups = _dip_groups(params, loaded, config.method)
    kv_tokens = kv_budget_tokens(hw, 0, config.window_len)  # as memsim plans it
    caps = cache_capacities(hw, loaded.shape, groups, kv_tokens=kv_tokens)
    out = {**params, "cache_policy": hw.cache.impl,
           "up_gate_capacity": caps[0].tolist(), "down_capacity": caps[1].tolist()}
    if config.method == "dip_ra":  # its reads are priced on the same flash
        out["flash_hw"] = config.hw
    return out


def _dip_groups(params: dict, loaded: LoadedModel, method: str = "dip_ca") -> list[MaskGroup]:
    """DIP's two mask groups with stand-in masks at the nominal keep fractions (what a
    `proportional` budget split reads; `equal` reads only the shapes), as memsim groups a DIP
    trace: `up_gate` (a column of W_up and of W_gate), or `up` alone in a plain FFN."""
    shape = loaded.shape
    L, H, I = shape.num_hidden_layers, shape.hidden_size, shape.intermediate_size
    up_keep, down_keep = resolve_keeps(parse_params(MASKS.get(method).Params, params, method),
                                       L, method)
    up, down = np.zeros((1, L, H), bool), np.zeros((1, L, I), bool)
    for layer, (ku, kd) in enumerate(zip(keep_to_k(up_keep, H), keep_to_k(down_keep, I))):
        up[0, layer, :ku], down[0, layer, :kd] = True, True
    return Trace(up=up, down=down, model=shape).groups()  # as memsim groups a DIP trace
