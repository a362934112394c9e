"""The strict hardware-config loader: every malformed case is one clear error."""
from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from memsim.core.errors import ConfigError
from memsim.hw.config import hw_from_dict, list_presets, load_hw
from tests.helpers import BASE_HW


@pytest.mark.parametrize("name", ["paper_reference", "flagship", "midrange"])
def test_presets_load_and_convert_units_once(name):
    hw = load_hw(name)
    assert hw.dram.read_bandwidth_Bps == hw.dram.read_bandwidth_GBps * 1e9
    assert hw.dram.capacity_bytes == hw.dram.capacity_GB * 1e9
    assert name in list_presets()


def test_paper_reference_preset_has_the_analytic_semantics():
    hw = load_hw("paper_reference")
    assert (hw.dram.read_bandwidth_GBps, hw.flash.read_bandwidth_GBps) == (60.0, 1.0)
    assert hw.compute.ignore and hw.flash.latency_us == 0 and hw.flash.impl == "simple"
    assert hw.timing.dram_writes == "free" and hw.timing.kv_length == "average"
    assert hw.cache.split == "equal" and not hw.timing.prefetch_next_layer


def _set(path, value):
    def edit(d):
        *parents, leaf = path.split(".")
        for p in parents:
            d = d[p]
        if value is KeyError:
            del d[leaf]
        else:
            d[leaf] = value
    return edit


BAD = {
    "unknown key": (_set("dram.bandwidth", 3), "dram.bandwidth", "unknown key"),
    "unknown top key": (_set("gpu", {}), "gpu", "unknown key"),
    "negative bandwidth": (_set("dram.read_bandwidth_GBps", -1), "dram.read_bandwidth_GBps",
                           ">= 1e-06"),
    "zero capacity": (_set("dram.capacity_GB", 0), "dram.capacity_GB", "> 0"),
    "wrong type": (_set("dram.capacity_GB", "4GB"), "dram.capacity_GB", "expected float"),
    "bool is not a number": (_set("dram.capacity_GB", True), "dram.capacity_GB", "expected"),
    "missing required": (_set("dram.capacity_GB", KeyError), "dram.capacity_GB", "missing"),
    "efficiency above 1": (_set("compute.units.npu.efficiency", 1.5),
                           "compute.units.npu.efficiency", "<= 1"),
    "unknown flash impl": (_set("flash.impl", "nvme"), "flash.impl", "simple, ufs"),
    "missing impl": (_set("flash.impl", KeyError), "flash.impl", "impl"),
    "unknown cache policy": (_set("cache", {"impl": "fifo"}), "cache.impl", "lru"),
    "bad choice": (_set("placement", {"mlp": "cached"}), "placement.mlp", "dynamic"),
    "unknown decode unit": (_set("compute.decode_unit", "gpu"), "compute.decode_unit", "npu"),
    "not a mapping": (_set("dram", [1, 2]), "dram", "mapping"),
    "bits above 32": (_set("precision.mlp_bits", 64), "precision.mlp_bits", "<= 32"),
    "ufs key on simple flash": (_set("flash.page_size_KiB", 4), "flash.page_size_KiB",
                                "unknown key"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_config_gives_one_clear_error(case):
    edit, key_path, fragment = BAD[case]
    data = copy.deepcopy(BASE_HW)
    edit(data)
    with pytest.raises(ConfigError) as info:
        hw_from_dict(data, source="phone.yaml")
    message = str(info.value)
    assert message.startswith("phone.yaml: ") and key_path in message and fragment in message


def test_invalid_yaml_and_missing_file_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dram: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_hw(bad)
    with pytest.raises(ConfigError, match="flagship"):  # lists the presets
        load_hw(tmp_path / "nope.yaml")


def test_cli_validate_reports_without_traceback(tmp_path):
    data = copy.deepcopy(BASE_HW)
    data["dram"]["read_bandwidth_GBps"] = -5
    path = tmp_path / "phone.yaml"
    path.write_text(yaml.safe_dump(data))
    bad = subprocess.run([sys.executable, "-m", "memsim", "hw", "validate", str(path)],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "dram.read_bandwidth_GBps" in bad.stderr and "Traceback" not in bad.stderr
    good = subprocess.run([sys.executable, "-m", "memsim", "hw", "validate",
                           "hw_configs/flagship.yaml"], capture_output=True, text=True)
    assert good.returncode == 0 and "ok" in good.stdout


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_hw(path)


def test_docs_key_table_is_the_loader_s_own_schema():
    from pathlib import Path

    from memsim.hw.config import HardwareConfig
    from memsim.hw.keys_doc import keys_markdown
    docs = (Path(__file__).resolve().parent.parent / "docs" / "hw_config.md").read_text()
    assert keys_markdown(HardwareConfig) in docs, "regenerate docs/hw_config.md: memsim hw keys"
