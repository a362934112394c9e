"""docs/results.md: the trained-predictor baseline, included from docs/predictor_results.md
(written by benchmarks/predictor_table.py in its own run, which the included text names;
the claims.py section interface)."""
from __future__ import annotations

from pathlib import Path

from predictor_table import TITLE  # noqa: F401,I001 (same folder: the included doc's title)

DOC = Path(__file__).resolve().parent.parent / "docs" / "predictor_results.md"


def run(ctx) -> dict:
    return {"text": DOC.read_text() if DOC.is_file() else ""}


def render(data: dict, ctx) -> list[str]:
    """The included doc without its own heading (claims.py writes the numbered one)."""
    if not data["text"]:
        return ["_Not run yet: `benchmarks/predictor_table.py` writes "
                f"docs/{DOC.name}, included here._"]
    lines = data["text"].rstrip("\n").splitlines()
    body = lines[1:] if lines and lines[0].startswith("#") else lines
    return [f"Included from docs/{DOC.name} (its own run, named below).", *body]


def example_data(ctx) -> dict:
    import predictor_table

    return {"text": predictor_table.render_example()}
