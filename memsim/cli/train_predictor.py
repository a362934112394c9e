"""`memsim train-predictor`: fit the `predictor` method's low-rank activation predictor
(Deja Vu style) to a model. Flags and work live in workloads/train_predictor.py, which imports
no torch until the command runs."""
from __future__ import annotations

from memsim.cli import COMMANDS
from memsim.cli.models import _WorkloadsCommand


@COMMANDS.register("train-predictor")
class TrainPredictor(_WorkloadsCommand):
    help = "train a low-rank activation predictor for `memsim eval --method predictor`"
    key = "train-predictor"

    def _module(self):
        from workloads.train_predictor import add_train_predictor_arguments, run_train_predictor
        return add_train_predictor_arguments, run_train_predictor
