"""Bookkeeping for the bad-input tests: each bad input a test tries is classified as a clean
error, a traceback, or a silent success, and counted by category (a kind of bad input, named;
each test module names its own in `CAT`).

`expect_clean(category, fn)` runs `fn`, which must raise a ConfigError (a clean error); any
other exception is a traceback and a normal return is a silent success. `run_cli(category,
argv)` runs `memsim ARGV` in this process and classifies its exit status and stderr. Both
record the outcome before asserting, so `MEMSIM_BADINPUT_TALLY=path pytest` writes the
counts (tests/conftest.py) even for a failing run.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from collections import Counter
from typing import Any, Callable

from memsim.core.errors import ConfigError

TALLY: Counter = Counter()  # (category, outcome) -> bad inputs tried
CATEGORIES = ("damaged or wrong trace files", "output locations",
              "damaged results and sweep folders", "YAML and JSON", "absurd numbers",
              "sweep process hygiene", "errors name what the user typed",
              "eval checks before model loading", "numbers as documented")
INTERNAL_TAGS = ("<api>", "<cli>", "<hw>", "<model>")


def record(category: str, outcome: str) -> None:
    assert category in CATEGORIES, category
    assert outcome in ("clean", "traceback", "silent")
    TALLY[(category, outcome)] += 1


def expect_clean(category: str, fn: Callable[[], Any], *needles: str) -> ConfigError:
    """`fn()` must raise a ConfigError whose message holds every needle and no internal
    tag; returns it."""
    try:
        fn()
    except ConfigError as exc:
        record(category, "clean")
        text = str(exc)
        assert not any(tag in text for tag in INTERNAL_TAGS), text
        for needle in needles:
            assert needle in text, (needle, text)
        return exc
    except Exception as exc:  # noqa: BLE001 - this is what the test looks for
        record(category, "traceback")
        raise AssertionError(f"traceback: {type(exc).__name__}: {exc}") from exc
    record(category, "silent")
    raise AssertionError("bad input accepted silently")


def run_cli(category: str, argv: list[str], *needles: str, main=None,
            marker: str = ": error:") -> str:
    """Run `memsim ARGV` here; it must exit non-zero with one `memsim...: error:` line
    (`marker`) on stderr, every needle in stderr, no traceback and no internal tag.
    Returns stderr."""
    if main is None:
        from memsim.cli import main
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors are clean too
        code = exc.code
    except Exception as exc:  # noqa: BLE001
        record(category, "traceback")
        raise AssertionError(f"traceback for {argv}: {type(exc).__name__}: {exc}") from exc
    text = err.getvalue()
    if code == 0:
        record(category, "silent")
        raise AssertionError(f"memsim {' '.join(argv)} succeeded on bad input")
    if "Traceback" in text:
        record(category, "traceback")
        raise AssertionError(text)
    record(category, "clean")
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if marker in line]
    assert len(errors) == 1, text
    assert not any(tag in text for tag in INTERNAL_TAGS), text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def write_tally(path: str) -> None:
    rows = {}
    for (category, outcome), count in sorted(TALLY.items()):
        rows.setdefault(category, {"clean": 0, "traceback": 0, "silent": 0})[outcome] += count
    with open(path, "w") as fh:
        json.dump(rows, fh, indent=1)


def tally_path() -> str | None:
    return os.environ.get("MEMSIM_BADINPUT_TALLY")
