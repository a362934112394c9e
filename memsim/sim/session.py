"""Chat sessions: minutes of use, not one trace (`memsim simulate --session chat.yaml`).

    name: chat
    turns:                       # played in order, then again (repeat / duration_s)
      - {prompt_tokens: 400, answer_tokens: 200, think_s: 0}
      - {prompt_tokens: 60, answer_tokens: 150, think_s: 20}
    repeat: 3                    # play the turns 3 times...
    duration_s: 600              # ...or, if given, until 600 simulated seconds have passed
    max_context_tokens: 4096     # the KV cache keeps at most this many tokens (oldest dropped)

A turn is: the user thinks for `think_s` (the phone idles and cools; background apps go on),
sends `prompt_tokens` (a prefill after the context kept so far: its TTFT), and reads
`answer_tokens` decode steps. The answers' masks are the trace's tokens in order, looped as
often as needed; the DRAM cache stays warm across turns (the trace is replayed as one
sequence, twice, and loops after the first use the second pass's cache outcome: the state a
periodic stream settles into). Each token's KV length is its place in the context.
What a session ignores: the masks' dependence on the conversation (they are the trace's),
the app's own work between turns, the trace's own prompt length and sequence boundaries.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memsim.core.errors import ConfigError
from memsim.core.files import as_path
from memsim.core.schema import load_dataclass, spec
from memsim.core.strict_yaml import read_yaml_mapping
from memsim.traces.trace import Trace


@dataclass(frozen=True, kw_only=True)
class Turn:
    """One exchange: think, send a prompt, read the answer."""

    prompt_tokens: int = spec("tokens the user sends (prefilled)", ge=1, le=10**7)
    answer_tokens: int = spec("tokens the model answers (decode steps)", ge=1, le=10**7)
    think_s: float = spec("idle time before the prompt is sent", default=0.0, unit="s", ge=0,
                          le=1e7)


@dataclass(frozen=True, kw_only=True)
class SessionSpec:
    """A chat session: turns played in order, repeated."""

    name: str = spec("label in results", default="session")
    turns: tuple[Turn, ...] = spec("the turns, in order")
    repeat: int = spec("play the turns this many times (unless duration_s is given)",
                       default=1, ge=1, le=10**6)
    duration_s: float | None = spec("repeat the turns until this much simulated time has "
                                    "passed (the turn in progress ends)", default=None,
                                    unit="s", gt=0, le=1e7)
    max_context_tokens: int = spec("KV cache length kept (older tokens are dropped)",
                                   default=4096, ge=1, le=10**8)

    def __post_init__(self) -> None:
        if not self.turns:
            raise ConfigError("a session needs at least one turn", key_path="turns",
                              allowed="a list of {prompt_tokens, answer_tokens, think_s}")
        for i, turn in enumerate(self.turns):
            if turn.prompt_tokens + turn.answer_tokens > self.max_context_tokens:
                raise ConfigError(f"turn {i} needs {turn.prompt_tokens + turn.answer_tokens} "
                                  f"tokens of context, more than max_context_tokens "
                                  f"{self.max_context_tokens}", key_path=f"turns[{i}]",
                                  allowed=f"prompt + answer <= {self.max_context_tokens}")

    def played_turns(self):
        """(index, turn) in play order; endless when `duration_s` decides the end."""
        k = 0
        while self.duration_s is not None or k < self.repeat * len(self.turns):
            yield k, self.turns[k % len(self.turns)]
            k += 1


def load_session(path_or_data: Any, *, source: str = "<api>") -> SessionSpec:
    """A session YAML file (path) or its parsed mapping -> SessionSpec (strict)."""
    if isinstance(path_or_data, (str, Path)):
        path = as_path(path_or_data, "session file", "session")
        data = read_yaml_mapping(path, what="session file")
        return load_dataclass(SessionSpec, data, source=str(path))
    if isinstance(path_or_data, SessionSpec):
        return path_or_data
    return load_dataclass(SessionSpec, path_or_data, source=source)


def session_trace(trace: Trace) -> Trace:
    """The trace's tokens twice, as one sequence with no prompt: the cache outcome of the
    first pass is a session's start, the second pass's is what later loops replay."""
    words = {n: np.concatenate([w, w], axis=0) for n, w in trace.words.items()}
    return dataclasses.replace(trace, words=words, prompt_len=0,
                               sequence_lengths=(2 * trace.num_tokens,))


def token_rows(first: int, count: int, trace_tokens: int) -> np.ndarray:
    """Rows of `session_trace` for the session's decode tokens first .. first + count - 1."""
    i = np.arange(first, first + count)
    return np.where(i < trace_tokens, i, trace_tokens + (i - trace_tokens) % trace_tokens)


class ContextWindow:
    """How many tokens the KV cache holds as the session goes (oldest dropped at the cap)."""

    def __init__(self, max_tokens: int):
        self.max_tokens, self.tokens = max_tokens, 0

    def admit(self, prompt: int, answer: int) -> int:
        """Make room for a turn; returns the context its prompt sees."""
        self.tokens = min(self.tokens, self.max_tokens - prompt - answer)
        return self.tokens

    def kv_lengths(self, prompt: int, answer: int) -> np.ndarray:
        """(answer,) KV entries each answer token attends to (itself included)."""
        return self.tokens + prompt + np.arange(1, answer + 1, dtype=np.float64)

    def close(self, prompt: int, answer: int) -> None:
        self.tokens += prompt + answer
