"""`memsim eval` and `memsim finetune`: the transformer half (workloads/, torch).

The flags come from workloads/ itself, which imports no torch until a command runs; if it is
not installed, both commands say how to get it.
"""
from __future__ import annotations

from memsim.cli import COMMANDS, Command
from memsim.core.errors import ConfigError

INSTALL_HINT = "run: pip install -e '.[model]'"


class _WorkloadsCommand(Command):
    """A command whose flags and work live in a workloads/ module."""

    key = ""

    def _module(self):
        raise NotImplementedError

    def add_arguments(self, p) -> None:
        try:
            add = self._module()[0]
        except ImportError as exc:
            p.set_defaults(workloads_error=f"workloads unavailable ({exc}); {INSTALL_HINT}")
            return
        add(p)

    def run(self, args) -> int:
        if getattr(args, "workloads_error", None):
            raise ConfigError(args.workloads_error, source="<cli>", key_path=self.key)
        return self._module()[1](args)


@COMMANDS.register("eval")
class Eval(_WorkloadsCommand):
    help = "perplexity and a trace from a real masked forward pass"
    key = "eval"

    def _module(self):
        from workloads.cli import add_eval_arguments, run_eval
        return add_eval_arguments, run_eval


@COMMANDS.register("finetune")
class Finetune(_WorkloadsCommand):
    help = "train LoRA adapters with the masks active (PEFT)"
    key = "finetune"

    def _module(self):
        from workloads.finetune import add_finetune_arguments, run_finetune
        return add_finetune_arguments, run_finetune
