"""A generated doc holds no typed number: every number it shows comes from the run that
writes it (or from a quoted source, which says where from), never from the template.

Every script in benchmarks/ (a module with `main()`) that writes a doc (a string literal
ending in `.md`, outside docstrings) is a generator and must define `render_example() -> str`: its doc rendered from a
small fixture of fake results (no model runs, no simulations of real size). The test renders
it and checks that no number in the text is a number written in a string literal of the
generator's "template": the generator module, the benchmarks/ modules it imports, and the
modules it names in `SECTIONS` (claims.py's sections). A new generator is picked up by the
scan; one without `render_example` fails, saying so.

Functions named `render_example` or `example_*` build the fixture: their strings are fake
results, not template. A number is a run of digits (with a decimal point or thousands commas) that is not part of a
word: "4.9 MB", "46%", "1.43x", "H=5120" and "(2)" hold numbers; "SmolLM2-135M", "Q4_1",
"float32" and "phi-3-medium" do not. Format specs (`{x:.2f}`) are not text.
"""
from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NUMBER = re.compile(r"(?<![\w./])(?<![A-Za-z]-)(\d+(?:,\d{3})*(?:\.\d+)?)(?=x\b|%|[^\w]|$)")
# Generators written before this check, converted by their owners: the scan covers them,
# expecting failure until then; strict, so a converted one turns this test red until its
# entry is removed. (Names absent from benchmarks/ are ignored.)
NOT_YET_CONVERTED: dict[str, str] = {}  # every generator is converted


FIXTURE_PREFIXES = ("render_example", "example_")  # functions that build the fixture


def numbers_in(text: str) -> set[str]:
    """The numbers a reader sees in `text`, normalised ("2,560" -> "2560", "4.0" stays)."""
    return {m.group(1).replace(",", "") for m in NUMBER.finditer(text)}


def _literals(path: Path) -> list[str]:
    """Text a module can put in its output: string constants and f-string parts, without
    docstrings and format specs."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            skip.add(id(body[0].value))  # a docstring
        if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            skip.update(id(n) for n in ast.walk(node.format_spec))
        if isinstance(node, ast.FunctionDef) and node.name.startswith(FIXTURE_PREFIXES):
            skip.update(id(n) for n in ast.walk(node))  # fake results, not the template
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in skip]


def _local_imports(path: Path) -> set[str]:
    """benchmarks/ modules `path` imports (same folder)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return {n for n in names if (BENCHMARKS / f"{n}.py").is_file()}


def template_modules(name: str) -> list[str]:
    """The generator and every benchmarks/ module that writes part of its text."""
    module = _import(name)
    todo, seen = [name, *getattr(module, "SECTIONS", ())], []
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.append(current)
            todo += sorted(_local_imports(BENCHMARKS / f"{current}.py"))
    return seen


def _import(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


def generators() -> list[str]:
    """benchmarks/ scripts (a `main()`) that write a doc (a string literal naming a .md file);
    modules that only write part of one (claims.py's sections) are checked with it."""
    def is_script(path: Path) -> bool:
        return any(isinstance(n, ast.FunctionDef) and n.name == "main"
                   for n in ast.parse(path.read_text()).body)

    return sorted(p.stem for p in BENCHMARKS.glob("*.py")
                  if is_script(p) and any(s.endswith(".md") for s in _literals(p)))


def typed_numbers(name: str, text: str) -> dict[str, list[str]]:
    """Numbers of `text` that the template writes: number -> where (module: literal)."""
    found: dict[str, list[str]] = {}
    shown = numbers_in(text)
    for module in template_modules(name):
        for literal in _literals(BENCHMARKS / f"{module}.py"):
            for number in numbers_in(literal) & shown:
                found.setdefault(number, []).append(f"{module}.py: {literal.strip()[:70]!r}")
    return found


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=NOT_YET_CONVERTED[n], strict=True))
    if n in NOT_YET_CONVERTED else n for n in generators()])
def test_a_generated_doc_shows_no_number_its_template_types(name):
    module = _import(name)
    assert hasattr(module, "render_example"), (
        f"benchmarks/{name}.py writes a doc: give it render_example() -> str (its doc from a "
        "small fixture) so this test can check its template")
    text = module.render_example()
    assert numbers_in(text), "the example shows no number: its fixture says nothing"
    typed = typed_numbers(name, text)
    assert not typed, "numbers typed in the template:\n" + "\n".join(
        f"  {number}: {'; '.join(where)}" for number, where in sorted(typed.items()))


def test_the_scan_finds_every_doc_generator():
    """The generators this change converted are found (a renamed one would escape)."""
    assert {"claims", "perplexity_table", "predictor_table", "calibration_fidelity",
            "flash_layout_study"} <= set(generators())


@pytest.mark.parametrize("text,numbers", [
    ("its 4.9 MB (16-bit) and 46% and 1.43x at H=5120, (2) 2,560 bytes, +-15%, 36-42 MB",
     {"4.9", "16", "46", "1.43", "5120", "2", "2560", "15", "36", "42"}),
    ("SmolLM2-135M Q4_1 float32 phi-3-medium runs/x_dip0.5 .2f v1", set()),
])
def test_numbers_are_what_a_reader_sees_as_numbers(text, numbers):
    assert numbers_in(text) == numbers
