"""benchmarks/record.py: every benchmark's JSON says which commit, versions, machine, device and
date produced it, and no benchmark script writes JSON any other way."""

import datetime
import importlib.util
import json
import re
import subprocess
import sys

import numpy
import pytest

import relbench
from conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def record():
    spec = importlib.util.spec_from_file_location("benchmark_record", BENCHMARKS / "record.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_provenance(p, device):
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert p["commit"] in (head, head + "-dirty")
    assert p["relbench"] == relbench.__version__
    assert p["libraries"]["numpy"] == numpy.__version__
    assert p["device"] == device
    assert p["machine"]["cpus"] and p["machine"]["platform"]
    date = datetime.datetime.fromisoformat(p["date"])
    assert date.utcoffset() == datetime.timedelta(0)


def test_write_json_keeps_the_result_and_adds_provenance(record, tmp_path):
    path = tmp_path / "sub" / "bench.json"
    record.write_json(path, {"images_per_s": 1.25, "rows": [1, 2]}, device="NVIDIA H200")
    got = json.loads(path.read_text())
    assert list(got) == ["provenance", "images_per_s", "rows"]
    assert got["images_per_s"] == 1.25 and got["rows"] == [1, 2]
    check_provenance(got["provenance"], "NVIDIA H200")


def test_device_defaults_to_cpu_without_cuda(record, tmp_path):
    torch = sys.modules.get("torch")
    expected = torch.cuda.get_device_name() if torch is not None and torch.cuda.is_available() else "cpu"
    assert record.provenance()["device"] == expected


def test_append_jsonl_adds_one_line_per_result(record, tmp_path):
    path = tmp_path / "sweep.jsonl"
    record.append_jsonl(path, {"step": 1}, device="cpu")
    record.append_jsonl(path, {"step": 2}, device="cpu")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    for x in lines:
        check_provenance(x["provenance"], "cpu")


def test_a_result_with_its_own_provenance_is_refused_and_nothing_written(record, tmp_path):
    path = tmp_path / "bench.json"
    with pytest.raises(ValueError, match="provenance"):
        record.write_json(path, {"provenance": "mine"})
    assert not path.exists()


# what writing JSON without the recorder looks like: json.dump(s) straight into a file
DIRECT_WRITE = re.compile(r"write_text\(\s*json\.dumps|json\.dump\(|\.write\(\s*json\.dumps")
OUTPUT_OPTION = re.compile(r"add_argument\(\"--(out|json|json-lines)\"")


def test_every_benchmark_with_an_output_file_writes_it_through_the_recorder():
    scripts = sorted(p for p in BENCHMARKS.glob("*.py") if p.name != "record.py")
    writers = [p.name for p in scripts if OUTPUT_OPTION.search(p.read_text())]
    # the scan finds the writers it must (a broken pattern would find none and pass below)
    assert {"gpu_flux.py", "gpu_train.py", "lab.py", "train_cpu.py", "vlm_judge.py"} <= set(writers)
    assert [n for n in writers if "from record import" not in (BENCHMARKS / n).read_text()] == []
    # these write their inputs (synthetic training data, a tiny model's config) as JSON, not results
    assert [p.name for p in scripts if DIRECT_WRITE.search(p.read_text())] == ["gpu_train.py", "report_build.py",
                                                                               "train_cpu.py"]
