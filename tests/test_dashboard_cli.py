"""`dynabert dashboard`: the packaged Streamlit app served on 127.0.0.1, and a wheel that ships it."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from app.cli.main import main
from app.cli.dashboard import streamlit_argv

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_argv_serves_the_packaged_app_locally(tmp_path):
    argv = streamlit_argv(tmp_path, 8765)
    app = Path(argv[argv.index("run") + 1])
    assert app.name == "main.py" and (app.parent / "dashboard" / "pages" / "pareto.py").is_file()
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[argv.index("--browser.gatherUsageStats") + 1] == "false"
    assert argv[-2:] == ["--runs-dir", str(tmp_path.resolve())] and argv[argv.index("--server.port") + 1] == "8765"


def test_missing_runs_dir_is_one_message(tmp_path, capsys):
    assert main(["dashboard", "--runs-dir", str(tmp_path / "absent")]) == 2
    assert "--runs-dir" in capsys.readouterr().err


def test_dashboard_answers_on_localhost(tmp_path, real_runs):
    shutil.copytree(real_runs, tmp_path / "runs")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # From another directory: the app must not depend on the current directory being a checkout.
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "dashboard", "--runs-dir", str(tmp_path / "runs"),
                             "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, health = time.time() + 120, ""
        while time.time() < deadline and not health:
            if proc.poll() is not None:
                pytest.fail(proc.stdout.read().decode()[-2000:])
            try:
                health = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read().decode()
            except OSError:
                time.sleep(0.5)
        assert health == "ok"
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_the_wheel_ships_the_dashboard(tmp_path):
    """`pip install .` outside a checkout gets main.py, its pages and the packaged data (non-editable build)."""
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    assert {"app/main.py", "app/cli/dashboard.py", "app/dashboard/pages/pareto.py", "app/dashboard/pages/export.py",
            "elastic/data/hub.py", "elastic/export/model_card.py", "app/workflow/pipeline.py", "app/workflow/export.py",
            "elastic/training/loop.py", "elastic/training/stage_options.py"} <= names
    meta = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).read(meta).decode()
    for req in ("optuna>=5.0", "streamlit>=1.52", "sqlalchemy>=2.0", "huggingface_hub>=1.0", "filelock>=3.0"):
        assert req.replace("_", "-") in text.replace("_", "-"), req
    # torch and torchao as ranges (the exact versions of this machine are in constraints.txt, not in the wheel)
    from packaging.requirements import Requirement

    reqs = {r.name: r for r in (Requirement(line.split(":", 1)[1]) for line in text.splitlines()
                                if line.startswith("Requires-Dist:"))}
    assert "Requires-Python: >=3.11" in text
    assert "2.6" in reqs["torch"].specifier and "2.13.0" in reqs["torch"].specifier
    assert "3.0" not in reqs["torch"].specifier and "0.18.0" in reqs["torchao"].specifier
