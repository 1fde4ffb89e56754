"""`dynabert dashboard`: the Streamlit app shipped in the package, served on 127.0.0.1."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

# The same settings as the checkout's .streamlit/config.toml: local only, no usage statistics.
SERVER_FLAGS = ("--server.address", "127.0.0.1", "--server.headless", "true",
                "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal")


def register(sub) -> None:
    """Add `dynabert dashboard`."""
    p = sub.add_parser("dashboard", help="serve the dashboard (Streamlit) on 127.0.0.1",
                       description="Serves the DynaBERT Explorer dashboard on http://127.0.0.1:PORT. It reads run "
                                   "directories; its Export page writes the sub-network you pick to "
                                   "exports/<name>/ inside that run directory (what `dynabert export` writes). "
                                   "Nothing is trained or searched from it.")
    p.add_argument("--runs-dir", type=Path, help="folder of run directories (default: $DYNABERT_RUNS_DIR, else ./runs)")
    p.add_argument("--port", type=int, default=8501, help="port on 127.0.0.1 (default 8501)")
    p.set_defaults(func=_run)


def streamlit_argv(runs_dir: Path | None, port: int) -> list[str]:
    """The `python -m streamlit run` command line of the packaged app."""
    main_py = Path(__file__).resolve().parents[1] / "main.py"
    argv = [sys.executable, "-m", "streamlit", "run", str(main_py), *SERVER_FLAGS, "--server.port", str(port)]
    if runs_dir is not None:
        argv += ["--", "--runs-dir", str(runs_dir.expanduser().resolve())]
    return argv


def _run(args: argparse.Namespace) -> int:
    if args.runs_dir is not None and not args.runs_dir.is_dir():
        raise FileNotFoundError(f"--runs-dir {args.runs_dir} is not a directory; give the folder that holds your "
                                "run directories (e.g. runs)")
    print(f"Dashboard: http://127.0.0.1:{args.port}  (Ctrl-C to stop)", flush=True)
    # main.py imports `app.*`: the package's parent must be importable whatever the current directory is.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.call(streamlit_argv(args.runs_dir, args.port), env=env)
