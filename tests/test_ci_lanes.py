"""The CI lanes: registered markers only, the slowest tests listed, browser tests that fail under
CI=true where chromium is missing, and the tests that need a browser or several processes marked
so. (The lint lane is .ci/run's `ruff check .`.)"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

TESTS = ROOT / "tests"


def pytest_in(args, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd,
                          env=env or dict(os.environ), capture_output=True, text=True, timeout=300)


def test_an_unregistered_marker_is_an_error_and_the_slowest_tests_are_listed(tmp_path):
    (tmp_path / "test_marks.py").write_text(
        "import pytest\n\n@pytest.mark.slow\ndef test_registered():\n    pass\n\n"
        "@pytest.mark.slwo\ndef test_misspelt():\n    pass\n")
    res = pytest_in(["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), str(tmp_path)])
    assert res.returncode != 0
    assert "'slwo' not found in `markers` configuration option" in res.stdout + res.stderr
    (tmp_path / "test_marks.py").write_text("import pytest\n\n@pytest.mark.slow\ndef test_registered():\n    pass\n")
    res = pytest_in(["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), str(tmp_path)])
    assert res.returncode == 0, res.stdout
    assert "slowest 20 durations" in res.stdout


def without_chromium(ci):
    """The environment of a machine with no chromium on PATH (python and git stay reachable)."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/nonexistent"])
    if ci is not None:
        env["CI"] = ci
    return env


@pytest.mark.parametrize("ci, passes", [(None, True), ("false", True), ("true", False)])
def test_browser_tests_skip_without_chromium_except_under_ci(ci, passes):
    one = "tests/test_report_browser.py::test_dom_opens_with_the_answer_panel"
    res = pytest_in([one, "-rs", "-q"], env=without_chromium(ci))
    out = res.stdout + res.stderr
    if passes:
        assert res.returncode == 0, out
        assert "1 skipped" in out and "no chromium on this machine" in out
    else:
        assert res.returncode == 1, out
        assert "1 error" in out and "under CI=true a browser test fails instead of skipping" in out


def marked(path: Path, marker: str) -> bool:
    return bool(re.search(rf"pytest\.mark\.{marker}\b", path.read_text()))


def test_browser_and_multiprocess_tests_are_marked():
    files = sorted(p for p in TESTS.glob("test_*.py") if p.name != "test_ci_lanes.py")
    browser = [p.name for p in files if re.search(r"playwright|CHROMIUM", p.read_text())]
    launch = [p.name for p in files if re.search(r"ACCELERATE_LAUNCH|torchrun", p.read_text())]
    assert browser == ["test_annotate_browser.py", "test_report_browser.py"]
    assert launch == ["test_multiprocess.py", "test_train_libraries.py", "test_trainer.py"]
    assert [n for n in browser if not marked(TESTS / n, "browser")] == []
    assert [n for n in launch if not marked(TESTS / n, "multiprocess")] == []

