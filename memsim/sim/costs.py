"""Per (token, layer) byte counts and closed-form durations of every transfer and kernel.

Everything that does not depend on timing is computed here, vectorised over tokens and
layers, before the event-driven run: which columns hit (the cache outcome depends only on the
trace), which flash requests the misses make (memsim/sim/flash_reads.py: exact runs, pages,
merged gaps), each transfer's duration on its resource, each kernel's compute time. The
engine (engine.py) then only decides *when* things happen.

A decode token is, per layer, three phases (PAPER.md section 5):
  attn  attention weights (resident: DRAM; streamed: flash) + KV read/append, resident
        adapters and mask predictor read, then compute (a predictor runs here, on the MLP
        input, before the MLP loads it decides);
  in    the groups read with the MLP input (W_up/W_gate columns; CATS's dense W_gate; a
        predictor's neuron bundles); their mask is known once attention has run, then compute;
  out   the groups whose mask is known only after `in` computed (W_down columns; CATS's W_up
        rows): with DIP their flash reads sit on the critical path; then compute.
A load step is flash reads || DRAM reads (hits, fills); each group is its own step, as each
masked matrix is in the authors' model. Loads of a group that the method reads densely
(mask all-true over the trace) and streamed weights are "known ahead" and may be prefetched.
Ignores: activations' traffic (a few KB per layer), norms, rotary tables, sampling.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.cache import POLICIES, CacheOutcome
from memsim.hw import HardwareConfig
from memsim.hw.layouts import Layout
from memsim.sim import hybrid
from memsim.sim.flash_reads import (
    ReadGeometry,
    TransferReads,
    geometry,
    locality_span_bytes,
    transfer_reads,
)
from memsim.sim.footprint import Footprint
from memsim.sim.plan import DramPlan
from memsim.traces import MaskGroup, ModelShape, Trace

IN_GROUPS = ("up_gate", "up", "gate", "neurons")  # masks known from the MLP input
PHASES = ("attn", "in", "out")


@dataclass(frozen=True)
class StepCosts:
    """Durations (s) and bytes for every (token, layer) of a run; T tokens, L layers, S steps.

    Load steps: step 0 is attention, steps 1.. are the mask groups in `step_phase` order.
    """

    flash_ahead_s: np.ndarray  # (T, L, S) flash reads known before the layer starts
    flash_demand_s: np.ndarray  # (T, L, S) flash reads known only once the mask is
    dram_s: np.ndarray  # (T, L, S) DRAM reads + writes of the step
    compute_s: np.ndarray  # (T, L, 3) kernel time per phase (attn, in, out)
    step_phase: tuple[int, ...]  # (S,) phase index of each load step
    head_flash_s: np.ndarray  # (T,) embedding row + LM head
    head_dram_s: np.ndarray  # (T,)
    head_compute_s: np.ndarray  # (T,)
    flash_bytes: np.ndarray  # (T,) bytes the token needs from flash (payload)
    flash_device_bytes: np.ndarray  # (T,) bytes the device reads (pages, merged gaps)
    flash_requests: np.ndarray  # (T,) read requests issued
    dram_read_bytes: np.ndarray  # (T,)
    dram_write_bytes: np.ndarray  # (T,)
    ops: np.ndarray  # (T,) arithmetic operations (1 MAC = 2)


class _Acc:
    """Accumulates per-token byte, request and op totals while steps are built."""

    def __init__(self, T: int):
        self.flash, self.flash_dev, self.requests, self.dram_r, self.dram_w, self.ops = (
            np.zeros(T) for _ in range(6))

    def add_flash(self, payload, device, requests) -> None:
        """Per-token (T,) or per-(token, layer) (T, L) figures; layers are summed."""
        for total, value in ((self.flash, payload), (self.flash_dev, device),
                             (self.requests, requests)):
            value = np.asarray(value, np.float64)
            total += value.sum(axis=1) if value.ndim == 2 else value


def group_geometries(hw: HardwareConfig, trace: Trace, plan: DramPlan,
                     layout: Layout | None) -> list[ReadGeometry]:
    """How each mask group sits in flash: dense groups stream their regions in file order
    (sequential); masked groups are read at data-dependent offsets (random)."""
    groups = trace.groups()
    return read_geometries(hw, trace.model, groups, plan.vector_bytes, layout,
                           [_is_dense(trace, g) for g in groups])


def read_geometries(hw: HardwareConfig, model: ModelShape, groups: list[MaskGroup],
                    vector_bytes: list[float], layout: Layout | None,
                    sequential: list[bool] | None = None) -> list[ReadGeometry]:
    """The read geometry of each of a token's `groups` (one column = its `vector_bytes`);
    random reads are priced within the span `flash.locality` names, which depends on all of
    them. `sequential`: per group, whether it streams in file order (default: none does).
    The simulator and a mask that prices its own reads (request_estimate.py) both use this,
    so they price the same requests the same way."""
    span = locality_span_bytes(hw, groups, vector_bytes, model.num_hidden_layers,
                               weight_file_bytes(model, hw))
    sequential = sequential or [False] * len(groups)
    return [geometry(hw, g, vb, layout, sequential=seq, span_bytes=span)
            for g, vb, seq in zip(groups, vector_bytes, sequential, strict=True)]


def weight_file_bytes(model: ModelShape, hw: HardwareConfig) -> float:
    """Every weight of the model at the preset's precision (a tied LM head stored once)."""
    fp = Footprint.of(model, hw)
    head = 0.0 if model.tie_word_embeddings else fp.lm_head_bytes
    return (model.num_hidden_layers * (fp.attention_bytes_per_layer + fp.mlp_bytes_per_layer)
            + fp.embedding_table_bytes + head)


def _is_dense(trace: Trace, group: MaskGroup) -> bool:
    return bool((trace.column_counts(group.mask_name) == group.num_columns).all())


def cache_outcome(hw: HardwareConfig, trace: Trace, plan: DramPlan,
                  geometries: list[ReadGeometry] | None = None) -> CacheOutcome:
    """Replay the trace through the configured policy (or through no cache); columns a
    hybrid placement keeps resident (memsim/sim/hybrid.py) never reach the cache and count
    as hits."""
    all_groups = trace.groups()
    groups = hybrid.without_resident(all_groups, plan.resident_columns)
    dynamic = hw.placement.mlp == "dynamic"
    policy = POLICIES.get(hw.cache.impl if dynamic else "none", key_path="cache.impl")
    policy = policy.configured(hw.cache)
    caps = plan.capacities if dynamic else [np.zeros_like(c) for c in plan.capacities]
    if dynamic and hw.cache.admit_overread and geometries is not None:
        from memsim.sim.overread import replay_admitting_overread
        outcome = replay_admitting_overread(policy, groups, caps, trace.sequence_lengths,
                                            geometries)
    else:
        outcome = policy.run_batch([g.bits for g in groups], caps, trace.sequence_lengths)
    return hybrid.with_resident_hits(outcome, all_groups, plan.resident_columns)


def kv_lengths(hw: HardwareConfig, trace: Trace) -> np.ndarray:
    """(T,) KV entries each decode token attends to (itself included)."""
    out = []
    for n in trace.sequence_lengths:
        if hw.timing.kv_length == "average":  # the analytic model's average-length pricing
            out.append(np.full(n, trace.prompt_len + (n + 1) / 2))
        else:
            out.append(trace.prompt_len + np.arange(1, n + 1, dtype=np.float64))
    return np.concatenate(out)


def build_step_costs(hw: HardwareConfig, model: ModelShape, trace: Trace, plan: DramPlan,
                     outcome: CacheOutcome, geometries: list[ReadGeometry]) -> StepCosts:
    """All per-(token, layer) durations of a decode run."""
    fp = Footprint.of(model, hw, trace.adapter_params, trace.predictor_params)
    T, L = trace.num_tokens, model.num_hidden_layers
    acc = _Acc(T)
    groups = trace.groups()
    ahead, demand, dram = (np.zeros((T, L, 1 + len(groups))) for _ in range(3))
    compute_ops = np.zeros((T, L, 3))
    ahead[:, :, 0], dram[:, :, 0], compute_ops[:, :, 0] = _attention(hw, model, fp, trace, plan,
                                                                     acc)
    step_phase = [0]
    for g, group in enumerate(groups):
        phase = 1 if group.name in IN_GROUPS else 2
        count = trace.column_counts(group.mask_name).astype(np.float64)  # (T, L)
        flash_s, dram_s = _mlp_group(hw, count, g, plan, outcome, geometries[g], acc)
        (ahead if geometries[g].is_sequential else demand)[:, :, 1 + g] = flash_s
        dram[:, :, 1 + g] = dram_s
        for p, ops in _group_ops(group, count, phase):
            compute_ops[:, :, p] += ops
        step_phase.append(phase)
    head_flash, head_dram, head_ops = _head(hw, model, fp, plan, acc)
    rate = 0.0 if hw.compute.ignore else 1.0 / hw.compute.units[hw.compute.decode_unit].ops_per_s
    acc.ops += compute_ops.sum(axis=(1, 2)) + head_ops
    return StepCosts(ahead, demand, dram, compute_ops * rate, tuple(step_phase),
                     np.full(T, head_flash), np.full(T, head_dram), np.full(T, head_ops * rate),
                     acc.flash, acc.flash_dev, acc.requests, acc.dram_r, acc.dram_w, acc.ops)


def _group_ops(group: MaskGroup, count: np.ndarray, phase: int) -> list[tuple[int, np.ndarray]]:
    """(phase, ops) of a group's kernels: a neuron bundle's up (and gate) rows run in `in`,
    its down column in `out` (a gated bundle is 3 vectors, a plain one 2)."""
    per_vector = 2.0 * count * group.vector_weights  # one MAC per weight, 2 ops
    if group.name == "neurons":
        return [(1, (group.num_matrices - 1) * per_vector), (2, per_vector)]
    return [(phase, per_vector * group.num_matrices)]


def _attention(hw, model, fp, trace, plan, acc):
    """Attention weights (resident part from DRAM, the rest from flash), the KV cache, and
    the layer's share of the resident adapters and mask predictor (read in full)."""
    T, L = trace.num_tokens, model.num_hidden_layers
    kv_len = kv_lengths(hw, trace)[:, None]  # (T, 1)
    extra = fp.resident_extra_bytes_per_layer
    w = fp.attention_bytes_per_layer + extra
    flash_bytes = (fp.attention_bytes_per_layer if hw.placement.attention == "streamed"
                   else fp.attention_bytes_per_layer * plan.overflow_fraction)
    flash_bytes += extra * plan.overflow_fraction
    kv_read = kv_len * fp.kv_bytes_per_token_per_layer  # (T, 1)
    dram_read = (w - flash_bytes) + kv_read
    kv_write = fp.kv_bytes_per_token_per_layer if hw.timing.dram_writes == "costed" else 0.0
    time, device = hw.flash.contiguous_reads(flash_bytes)
    flash_s = np.full((T, L), float(time))
    dram_s = dram_read / hw.dram.read_bandwidth_Bps + kv_write / hw.dram.write_bandwidth_Bps
    acc.add_flash(np.full(T, flash_bytes * L), np.full(T, float(device) * L),
                  np.full(T, float(flash_bytes > 0) * L))
    acc.dram_r += dram_read[:, 0] * L
    acc.dram_w += kv_write * L
    heads_x_dim = model.num_attention_heads * model.head_dim
    extra_ops = 2 * (trace.adapter_params + trace.predictor_params) / L
    ops = 2 * model.attention_params_per_layer + 4 * kv_len * heads_x_dim + extra_ops
    return flash_s, np.broadcast_to(dram_s, flash_s.shape), np.broadcast_to(ops, flash_s.shape)


def _mlp_group(hw, count: np.ndarray, g: int, plan: DramPlan, outcome: CacheOutcome,
               geom: ReadGeometry, acc) -> tuple[np.ndarray, np.ndarray]:
    """One mask group's flash reads (misses), DRAM reads (hits) and fills, per (T, L);
    `count` is the (T, L) number of columns the masks need."""
    vb = plan.vector_bytes[g]
    hits = outcome.hits[:, g, :].astype(np.float64)
    fills = outcome.fills[:, g, :].astype(np.float64)
    if hw.placement.mlp == "resident":  # all in DRAM, but for the overflow (read in one go)
        hits = count * (1.0 - plan.overflow_fraction)
        reads = _overflow_reads(hw, (count - hits) * vb)
    else:
        reads = transfer_reads(outcome.miss_words[g], geom, (count - hits) * vb)
    miss_bytes = (count - hits) * vb
    fill_bytes = fills * vb if hw.timing.dram_writes == "costed" else np.zeros_like(fills)
    dram_s = hits * vb / hw.dram.read_bandwidth_Bps + fill_bytes / hw.dram.write_bandwidth_Bps
    acc.add_flash(miss_bytes, reads.device_bytes, reads.requests)
    acc.dram_r += (hits * vb).sum(axis=1)
    acc.dram_w += fill_bytes.sum(axis=1)
    return reads.time_s, dram_s


def _overflow_reads(hw, miss_bytes: np.ndarray) -> TransferReads:
    """Resident MLP weights that did not fit: one sequential read of the overflow bytes."""
    time, device = hw.flash.contiguous_reads(miss_bytes)
    return TransferReads((miss_bytes > 0).astype(np.float64), device, time)


def _head(hw, model, fp, plan, acc):
    """Per token: one embedding row and the whole LM head (tied or not, it is read), each
    its own request when it comes from flash; resident ones too pay the overflow fraction
    (docs/hardware_model.md section 1: it applies to every resident-weight read)."""
    emb_flash = embedding_row_flash_bytes(hw, fp, plan)
    head_flash = (fp.lm_head_bytes if hw.placement.lm_head == "streamed"
                  else fp.lm_head_bytes * plan.overflow_fraction)
    time, device = hw.flash.contiguous_reads(np.array([emb_flash, head_flash]))
    dram_bytes = fp.embedding_row_bytes + fp.lm_head_bytes - emb_flash - head_flash
    acc.add_flash(emb_flash + head_flash, float(device.sum()),
                  float((emb_flash > 0) + (head_flash > 0)))
    acc.dram_r += dram_bytes
    return float(time.sum()), dram_bytes / hw.dram.read_bandwidth_Bps, 2.0 * model.embedding_params


def embedding_row_flash_bytes(hw: HardwareConfig, fp: Footprint, plan: DramPlan) -> float:
    """Bytes of the token's embedding row read from flash: all of it when streamed, the
    overflow fraction of it when resident (as every other resident read)."""
    if hw.placement.embedding == "streamed":
        return fp.embedding_row_bytes
    return fp.embedding_row_bytes * plan.overflow_fraction


def build_prefill_costs(hw: HardwareConfig, model: ModelShape, prompt_len: int,
                        plan: DramPlan, *, context_len: int = 0, adapter_params: int = 0,
                        predictor_params: int = 0) -> StepCosts:
    """The prompt's prefill as its own phase: `prompt_len` tokens after `context_len` tokens
    already in the KV cache (an earlier turn of a chat), dense, compute-bound.

    Per layer one load step, all known ahead: the attention weights, each MLP matrix (three
    gated, two plain; from flash when the MLP is cached or streamed, as prefill does not use
    the column cache, but for a hybrid placement's resident share, read from DRAM),
    the resident adapters and mask predictor, each from DRAM when resident but for the
    overflow fraction `o` (read from flash), plus the context's KV read and the prompt's KV
    append; layer 0 also reads the prompt's `P` embedding rows. Each weight region is one
    sequential flash request. Then one kernel: P tokens through the layer (with the adapters
    and the predictor) and causal attention over context + prompt. The kernel is the
    layer's last, so with `timing.prefetch_next_layer` the next layer's loads are issued
    when it starts and overlap it. The head is the LM head for the last position. Returned
    as a one-row StepCosts (one step, phase 0 loads, phase 2 kernel)."""
    fp, L, P = Footprint.of(model, hw, adapter_params, predictor_params), \
        model.num_hidden_layers, prompt_len
    o = plan.overflow_fraction
    acc = _Acc(1)
    attn_flash = fp.attention_bytes_per_layer * (1.0 if hw.placement.attention == "streamed"
                                                 else o)
    hybrid = plan.mlp_resident_bytes / L  # a hybrid placement's resident share: from DRAM
    mlp_flash = (fp.mlp_bytes_per_layer * o if hw.placement.mlp == "resident"
                 else fp.mlp_bytes_per_layer - hybrid * (1.0 - o))
    extra_flash = fp.resident_extra_bytes_per_layer * o
    m = model.num_mlp_matrices  # 3 gated, 2 plain: one sequential request per matrix
    sizes = np.array([attn_flash] + [mlp_flash / m] * m + [extra_flash])
    time, device = hw.flash.contiguous_reads(sizes)
    flash_s = np.full((1, L, 1), float(time.sum()))
    weights_dram = (fp.attention_bytes_per_layer + fp.mlp_bytes_per_layer
                    + fp.resident_extra_bytes_per_layer - sizes.sum())
    kv_read = context_len * fp.kv_bytes_per_token_per_layer
    kv_write = P * fp.kv_bytes_per_token_per_layer if hw.timing.dram_writes == "costed" else 0.0
    dram_s = np.full((1, L, 1), (weights_dram + kv_read) / hw.dram.read_bandwidth_Bps
                     + kv_write / hw.dram.write_bandwidth_Bps)
    emb_time, emb_device, emb_flash, emb_dram = _prompt_embedding_rows(hw, fp, plan, P)
    flash_s[0, 0, 0] += emb_time
    dram_s[0, 0, 0] += emb_dram / hw.dram.read_bandwidth_Bps
    heads_x_dim = model.num_attention_heads * model.head_dim
    extra_params = (adapter_params + predictor_params) / L
    ops = (2 * P * (model.attention_params_per_layer + model.mlp_params_per_layer + extra_params)
           + 4 * heads_x_dim * (P * context_len + P * (P + 1) / 2))  # token i sees ctx + i keys
    rate = 0.0 if hw.compute.ignore else 1.0 / hw.compute.units[hw.compute.prefill_unit].ops_per_s
    compute_s = np.zeros((1, L, 3))
    compute_s[:, :, 2] = ops * rate
    acc.add_flash(np.array([sizes.sum() * L + emb_flash]),
                  np.array([device.sum() * L + emb_device]),
                  np.array([float((sizes > 0).sum()) * L + (P if emb_flash > 0 else 0)]))
    acc.dram_r += (weights_dram + kv_read) * L + emb_dram
    acc.dram_w += kv_write * L
    head_flash, head_dram, head_ops = _lm_head(hw, model, fp, plan, acc)
    acc.ops += ops * L + head_ops
    return StepCosts(flash_s, np.zeros_like(flash_s), dram_s, compute_s, (0,),
                     np.array([head_flash]), np.array([head_dram]), np.array([head_ops * rate]),
                     acc.flash, acc.flash_dev, acc.requests, acc.dram_r, acc.dram_w, acc.ops)


def _prompt_embedding_rows(hw, fp: Footprint, plan: DramPlan, P: int):
    """(flash time, flash device bytes, flash payload, DRAM bytes) of the prompt's P
    embedding rows: from flash when streamed, one transfer of P requests (a row each, at its
    own offset), from DRAM when resident but for the overflow fraction (read the same way)."""
    row_flash = embedding_row_flash_bytes(hw, fp, plan)
    if P == 0 or row_flash <= 0:
        return 0.0, 0.0, 0.0, P * fp.embedding_row_bytes
    # one transfer of P requests, pipelined as every transfer (memsim/hw/flash/base.py)
    time = hw.flash.read_time_s(np.array([row_flash * P]), np.array([float(P)]),
                                sequential=False, range_bytes=fp.embedding_table_bytes)
    _, device = hw.flash.contiguous_reads(np.array([row_flash]))
    return (float(time[0]), float(device[0]) * P, row_flash * P,
            P * (fp.embedding_row_bytes - row_flash))


def _lm_head(hw, model, fp, plan, acc):
    """The LM head alone (prefill: the last position's logits), from DRAM when resident but
    for the overflow fraction, from flash when streamed."""
    head_flash = (fp.lm_head_bytes if hw.placement.lm_head == "streamed"
                  else fp.lm_head_bytes * plan.overflow_fraction)
    time, device = hw.flash.contiguous_reads(np.array([head_flash]))
    dram_bytes = fp.lm_head_bytes - head_flash
    acc.add_flash(head_flash, float(device.sum()), float(head_flash > 0))
    acc.dram_r += dram_bytes
    return float(time.sum()), dram_bytes / hw.dram.read_bandwidth_Bps, 2.0 * model.embedding_params


def with_kv_lengths(costs: StepCosts, rows: np.ndarray, kv_len: np.ndarray,
                    kv_base: np.ndarray, hw: HardwareConfig, model: ModelShape) -> StepCosts:
    """Tokens `rows` of `costs` (built with KV lengths `kv_base`), each now attending to
    `kv_len` entries: the attention step's KV read and the attention kernel change with it,
    linearly (see _attention); everything else is the row's own (a chat session, session.py)."""
    fp = Footprint.of(model, hw)
    L, kv_bytes = model.num_hidden_layers, fp.kv_bytes_per_token_per_layer
    heads_x_dim = model.num_attention_heads * model.head_dim
    rate = 0.0 if hw.compute.ignore else 1.0 / hw.compute.units[hw.compute.decode_unit].ops_per_s
    extra = np.asarray(kv_len, np.float64) - kv_base[rows]
    dram, compute = costs.dram_s[rows], costs.compute_s[rows]
    dram[:, :, 0] += (extra * kv_bytes / hw.dram.read_bandwidth_Bps)[:, None]
    compute[:, :, 0] += (4 * extra * heads_x_dim * rate)[:, None]
    return StepCosts(costs.flash_ahead_s[rows], costs.flash_demand_s[rows], dram, compute,
                     costs.step_phase, costs.head_flash_s[rows], costs.head_dram_s[rows],
                     costs.head_compute_s[rows], costs.flash_bytes[rows],
                     costs.flash_device_bytes[rows], costs.flash_requests[rows],
                     costs.dram_read_bytes[rows] + extra * kv_bytes * L,
                     costs.dram_write_bytes[rows], costs.ops[rows] + 4 * extra * heads_x_dim * L)


def token_energy_J(hw: HardwareConfig, costs: StepCosts) -> np.ndarray | None:
    """(T, 3) energy (J) of each token's flash, DRAM and compute work: device bytes x the
    flash's pJ/B, DRAM reads and writes x theirs, operations x the decode unit's pJ/op (0 when
    not given). None unless the three pJ/byte figures are given."""
    figures = (hw.flash.read_energy_pJ_per_byte, hw.dram.read_energy_pJ_per_byte,
               hw.dram.write_energy_pJ_per_byte)
    if any(f is None for f in figures):
        return None
    op_pJ = hw.compute.units[hw.compute.decode_unit].energy_pJ_per_op or 0.0
    return np.stack([costs.flash_device_bytes * figures[0],
                     costs.dram_read_bytes * figures[1] + costs.dram_write_bytes * figures[2],
                     costs.ops * op_pJ], axis=1) * 1e-12
