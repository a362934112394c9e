"""`memsim hw {validate, list, keys}`: hardware configs."""
from __future__ import annotations

from memsim.cli import COMMANDS, Command


@COMMANDS.register("hw")
class Hw(Command):
    help = "hardware configs"

    def add_arguments(self, p) -> None:
        hw_sub = p.add_subparsers(dest="hw_command", required=True)
        v = hw_sub.add_parser("validate", help="check a hardware YAML file")
        v.add_argument("file")
        hw_sub.add_parser("list", help="list the presets in hw_configs/")
        hw_sub.add_parser("keys", help="print every YAML key with its unit and range (markdown)")
        pr = hw_sub.add_parser("probe", help="effective flash read bandwidth and IOPS by request "
                                             "size, random and sequential (what a fio run shows)")
        pr.add_argument("hw", help="hardware YAML or preset name")

    def run(self, args) -> int:
        from memsim.hw import HardwareConfig, list_presets, load_hw

        if args.hw_command == "validate":
            hw = load_hw(args.file)
            print(f"{args.file}: ok ({hw.name}; flash {hw.flash.impl}, "
                  f"DRAM {hw.dram.capacity_GB} GB, cache {hw.cache.impl})")
        elif args.hw_command == "probe":
            from memsim.hw.probe import probe_table
            print(probe_table(load_hw(args.hw)))
        elif args.hw_command == "list":
            for name in list_presets():
                print(f"{name:20s} {load_hw(name).description}")
        else:
            from memsim.hw.keys_doc import keys_markdown
            print(keys_markdown(HardwareConfig))
        return 0
