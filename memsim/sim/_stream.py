"""The decode (or prefill) stream as a resumable program of requests, compiled (numba).

A token is a fixed program of ops (`token_program`): per layer, each load step (flash || DRAM)
then the phase's kernel, phases attn -> in -> out, and with prefetch the next layer's
known-ahead flash reads issued when the layer's last kernel starts; then the head. Each op
is issued at one time: the stream's clock `now` (loads, kernels) or the start of the kernel
it overlaps (a prefetch). Issue times never decrease along the program.

`advance` runs ops, token after token, while the next op's issue time is before `limit` (the
time of the next event of any other process, engine.py) and stops before the first op that
is not: every request is then queued in the order of its issue time, across all processes,
which is what makes the coarse step exact (a foreign request issued at the same time as one
of the stream's goes first). The speed of a resource (resources.py, set by the thermal
governor) is read when a request is issued; the request's nominal duration is divided by it.
The longest wait of any request between its issue and its start is kept per resource
(`wait`, the phone's `wait_s`): how long a speed read at issue can be out of date.
The energy of each request (its nominal duration x the token's power on that resource) is
added to the phone's energy counter when it is issued.

The schedule equals _token_step.token_step's (the compiled path) when nothing else runs:
tests/test_engine.py checks it on every preset, method and timing option.
"""
from __future__ import annotations

import numpy as np

from memsim.core.jit import kernel
from memsim.sim._token_step import _attribute  # the critical-path charge, shared
from memsim.sim.resources import COMPUTE, DRAM, FLASH, reserve_on

START, LOAD, KERNEL, PREFETCH, HEAD_LOAD, HEAD_KERNEL = range(6)
# float state
NOW, TOKEN_START, KERNEL_START, NEXT_ISSUE, HEAD_START, HEAD_END = range(6)
# int state
TOKEN, PC, STOP = range(3)
# per-token record columns
(REC_START, REC_END, REC_FLASH, REC_DRAM, REC_COMPUTE, REC_STALL, REC_BUSY_FLASH,
 REC_BUSY_DRAM, REC_BUSY_COMPUTE, REC_TEMPERATURE, REC_LEVEL, REC_SPEED) = range(12)
NUM_RECORDS = 12
# phone state read at token start: temperature, throttle level, compute speed (engine.py)
ENV_TEMPERATURE, ENV_LEVEL = range(2)
DONE, STOPPED = 0, 1


def token_program(step_phase: tuple[int, ...], num_layers: int,
                  prefetch: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kind, argument, layer) of each op of one token, in issue order."""
    ops = [(START, 0, 0)] if prefetch else []
    for layer in range(num_layers):
        for phase in range(3):
            ops += [(LOAD, s, layer) for s, p in enumerate(step_phase) if p == phase]
            ops.append((KERNEL, phase, layer))
            if phase == 2 and prefetch:
                ops.append((PREFETCH, 0, layer))
    ops += [(HEAD_LOAD, 0, num_layers), (HEAD_KERNEL, 0, num_layers)]
    return tuple(np.array(col, dtype=np.int64) for col in zip(*ops))


@kernel
def _request(timelines, queue_row, kind, at_s, nominal_s, speed, power_t, energy, busy, wait):
    """Issue one request of `nominal_s` at full speed on resource `kind`; `wait[kind]` keeps
    the longest wait between issue and start."""
    if nominal_s <= 0.0:
        return at_s, at_s
    duration = nominal_s / speed[kind]
    energy[0] += nominal_s * power_t[kind]
    busy[kind] += duration
    start, end = reserve_on(timelines, queue_row, kind, at_s, duration)
    if start - at_s > wait[kind]:
        wait[kind] = start - at_s
    return start, end


@kernel
def advance(timelines, flash_row, speed, energy, wait, phone_state, power, ahead, demand, dram,
            compute, head_flash, head_dram, head_compute, kinds, args, layers, prefetch,
            fs, ist, pending, split, busy, records, limit) -> int:
    """Run the stream's ops while their issue time is before `limit`; DONE when token
    `ist[STOP] - 1` has ended (its end in fs[NOW]), else STOPPED with the next op's issue
    time in fs[NEXT_ISSUE]. Costs are indexed by token row; `records` gets one row per
    token (the REC_* columns)."""
    num_ops = kinds.shape[0]
    L = ahead.shape[1]
    S = ahead.shape[2]
    while ist[TOKEN] < ist[STOP]:
        t, pc = ist[TOKEN], ist[PC]
        kind = kinds[pc]
        issue = fs[KERNEL_START] if kind == PREFETCH else fs[NOW]
        if issue >= limit:
            fs[NEXT_ISSUE] = issue
            return STOPPED
        now = fs[NOW]
        p_t = power[t]
        if pc == 0:
            fs[TOKEN_START] = now
            energy[0] += p_t[3]  # energy of work that takes no time (e.g. compute.ignore)
            split[:] = 0.0
            busy[:] = 0.0
            records[t, REC_TEMPERATURE] = phone_state[ENV_TEMPERATURE]
            records[t, REC_LEVEL] = phone_state[ENV_LEVEL]
            records[t, REC_SPEED] = speed[COMPUTE]
        layer = layers[pc]
        if kind == START:
            for s in range(S):
                pending[s, 0], pending[s, 1] = _request(timelines, flash_row, FLASH, now,
                                                        ahead[t, 0, s], speed, p_t, energy,
                                                        busy, wait)
        elif kind == LOAD:
            s = args[pc]
            if prefetch:
                f_start, f_end = _request(timelines, flash_row, FLASH, now, demand[t, layer, s],
                                          speed, p_t, energy, busy, wait)
                if pending[s, 1] > f_end:
                    f_start, f_end = pending[s, 0], pending[s, 1]
            else:
                f_start, f_end = _request(timelines, flash_row, FLASH, now,
                                          demand[t, layer, s] + ahead[t, layer, s], speed, p_t,
                                          energy, busy, wait)
            d_start, d_end = _request(timelines, DRAM, DRAM, now, dram[t, layer, s], speed, p_t,
                                      energy, busy, wait)
            fs[NOW] = _attribute(now, f_start, f_end, d_start, d_end, split)
        elif kind == KERNEL:
            start, end = _request(timelines, COMPUTE, COMPUTE, now, compute[t, layer, args[pc]],
                                  speed, p_t, energy, busy, wait)
            split[2] += end - start
            split[3] += start - now
            fs[KERNEL_START] = start
            fs[NOW] = end
        elif kind == PREFETCH:
            if layer + 1 < L:
                for s in range(S):
                    pending[s, 0], pending[s, 1] = _request(
                        timelines, flash_row, FLASH, issue, ahead[t, layer + 1, s], speed, p_t,
                        energy, busy, wait)
            else:
                fs[HEAD_START], fs[HEAD_END] = _request(timelines, flash_row, FLASH, issue,
                                                        head_flash[t], speed, p_t, energy,
                                                        busy, wait)
        elif kind == HEAD_LOAD:
            if prefetch:
                f_start, f_end = fs[HEAD_START], fs[HEAD_END]
            else:
                f_start, f_end = _request(timelines, flash_row, FLASH, now, head_flash[t],
                                          speed, p_t, energy, busy, wait)
            d_start, d_end = _request(timelines, DRAM, DRAM, now, head_dram[t], speed, p_t,
                                      energy, busy, wait)
            fs[NOW] = _attribute(now, f_start, f_end, d_start, d_end, split)
        else:  # HEAD_KERNEL: the token ends
            start, end = _request(timelines, COMPUTE, COMPUTE, now, head_compute[t], speed, p_t,
                                  energy, busy, wait)
            split[2] += end - start
            split[3] += start - now
            fs[NOW] = end
        pc += 1
        if pc == num_ops:
            records[t, REC_START] = fs[TOKEN_START]
            records[t, REC_END] = fs[NOW]
            records[t, REC_FLASH:REC_STALL + 1] = split
            records[t, REC_BUSY_FLASH:REC_BUSY_COMPUTE + 1] = busy
            ist[TOKEN] = t + 1
            pc = 0
        ist[PC] = pc
    return DONE
