"""`memsim eval` checks every argument before the model loads (which
takes ~20 s for SmolLM2): a bad flag is one line naming it, and the model is never loaded.
`workloads.evaluation.load_model` is replaced by a tripwire; a valid command trips it."""
from __future__ import annotations

import json

import pytest

from tests.badinput import run_cli

CAT = "eval checks before model loading"  # its category in the bad-input tally (tests/badinput.py)
pytest.importorskip("torch")


class ModelLoaded(Exception):
    """Raised by the tripwire: the model would have loaded."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from workloads.testing import sample_text, save_tiny_checkpoint

    root = tmp_path_factory.mktemp("evalargs")
    (root / "text.txt").write_text(sample_text(1500, seed=2))
    no_weights = root / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text(json.dumps({"num_hidden_layers": 2}))
    (root / "taken").write_text("a file")
    return {"dir": save_tiny_checkpoint(root / "llama", "llama"), "text": root / "text.txt",
            "no_weights": no_weights, "root": root}


@pytest.fixture
def tripwire(monkeypatch):
    import workloads.evaluation as evaluation

    def load_model(*args, **kwargs):
        raise ModelLoaded

    monkeypatch.setattr(evaluation, "load_model", load_model)


BAD = {  # flags added to a valid command -> the flag the error must name
    "unknown method": (["--method", "magic"], "--method"),
    "param the method lacks": (["--method", "dense", "--density", "0.5"], "--density"),
    "density out of range": (["--method", "dip", "--density", "3"], "--density"),
    "unknown --param": (["--method", "dip", "--param", "rho=1"], "--param rho"),
    "per-layer list of the wrong length": (["--method", "dip", "--up-keep", "0.5,0.5,0.5",
                                            "--down-keep", "0.5"], "--up-keep"),
    "dip_ca capacity beyond the matrix": (["--method", "dip_ca", "--up-gate-capacity", "999",
                                           "--down-capacity", "1"], "--up-gate-capacity"),
    "dip_ca offline policy": (["--method", "dip_ca", "--cache-policy", "belady"],
                              "--cache-policy"),
    "dip_ca --hw and explicit cache": (["--method", "dip_ca", "--hw", "flagship",
                                        "--cache-fraction", "0.5"], "--cache-fraction"),
    "unknown --hw": (["--hw", "no-such-phone"], "--hw"),
    "windows 0": (["--windows", "0"], "--windows"),
    "window-len 1": (["--window-len", "1"], "--window-len"),
    "stride 0": (["--stride", "0"], "--stride"),
    "calibration-windows 0": (["--calibration-windows", "0"], "--calibration-windows"),
    "negative seed": (["--seed", "-1"], "--seed"),
    "unknown dtype": (["--dtype", "float7"], "--dtype"),
    "unknown model": (["--model", "gpt-17"], "--model"),
    "checkpoint without weights": (["--model", "NO_WEIGHTS"], "--model"),
    "missing corpus": (["--corpus", "none.txt"], "--corpus"),
    "unknown split": (["--split", "validation"], "--split"),
    "missing adapter": (["--adapter", "no/such/adapter"], "--adapter"),
    "--out is a file": (["--out", "TAKEN"], "--out"),
}


def _argv(tiny, extra: list[str]) -> list[str]:
    swap = {"NO_WEIGHTS": str(tiny["no_weights"]), "TAKEN": str(tiny["root"] / "taken")}
    base = {"--model": str(tiny["dir"]), "--corpus": str(tiny["text"]), "--windows": "2",
            "--window-len": "16", "--out": str(tiny["root"] / "out")}
    flags = [swap.get(x, x) for x in extra]
    for flag in list(base):
        if flag in flags:
            del base[flag]
    return ["eval", "--no-progress", *[x for kv in base.items() for x in kv], *flags]


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_eval_argument_is_refused_before_the_model_loads(tiny, tripwire, case):
    extra, flag = BAD[case]
    try:
        run_cli(CAT, _argv(tiny, extra), flag)
    except AssertionError as exc:
        if isinstance(exc.__cause__, ModelLoaded):
            raise AssertionError(f"{case}: refused only after loading the model") from None
        raise


def test_the_tripwire_fires_for_a_valid_command(tiny, tripwire):
    """The control: with nothing wrong, evaluation reaches the model loader."""
    from memsim.cli import main

    with pytest.raises(ModelLoaded):
        main(_argv(tiny, ["--method", "dip", "--density", "0.5"]))
