"""README.md is a short user's guide: at most 150 lines, the two set-up commands first, no commit ids or private
paths, links that resolve, headline figures equal to their result files, and its export snippet runs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text()

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEX = re.compile(r"\b[0-9a-f]{7,40}\b")
FIGURES_HEADER = "| claim | split | figure | source |"


def _is_commit_id(word: str) -> bool:
    """A 7-40 character hex word with a digit and a letter a-f: `deadbeef` and `1234567` are not commits."""
    return bool(re.search(r"[0-9]", word)) and bool(re.search(r"[a-f]", word))


def test_is_commit_id_rule():
    assert _is_commit_id("780c986") and _is_commit_id("9a2059814d624beb69ad37993c2c0f50ba5164e5")
    assert not _is_commit_id("2225000") and not _is_commit_id("defaced") and not _is_commit_id("facade")


def test_at_most_150_lines():
    assert len(TEXT.splitlines()) <= 150, f"README.md has {len(TEXT.splitlines())} lines; move detail to docs/"


def test_starts_with_the_two_setup_commands():
    before_first_fence = TEXT.split("```", 1)[0]
    assert [ln for ln in before_first_fence.splitlines() if ln.strip()] == ["# DynaBERT Explorer"], \
        "only the title may come before the set-up commands"
    lang, body = FENCE.search(TEXT).groups()
    commands = [ln.split("#", 1)[0].strip() for ln in body.splitlines()]
    assert lang == "bash" and [c for c in commands if c] == ["make demo", "make test"]


def test_no_commit_ids_no_private_paths_no_old_client():
    commits = sorted({w for w in HEX.findall(TEXT) if _is_commit_id(w)})
    assert not commits, f"README.md names commit ids {commits}: history belongs in docs/RESULTS.md"
    assert "../shared" not in TEXT, "README.md names ../shared paths a user does not have"
    assert "huggingface-cli" not in TEXT, "the installed Hub client is `hf`"


def test_every_relative_link_exists():
    targets = [t for t in LINK.findall(TEXT) if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]
    assert targets, "no relative links found: the pattern is wrong"
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_screenshot_is_kept():
    assert "](docs/dashboard_pareto.png)" in TEXT


# ---- headline figures -------------------------------------------------------------------------------------

def _figures() -> list[tuple[str, str, str, str, str]]:
    """(claim, split, figure, result file, key path) for each row of the headline-figures table."""
    lines = TEXT.splitlines()
    start = lines.index(FIGURES_HEADER)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        claim, split, figure, source = [c.strip() for c in line.strip().strip("|").split(" | ")]
        path, key = re.fullmatch(r"`(results/[\w.-]+\.json)` `([^`]+)`", source).groups()
        rows.append((claim, split, figure, path, key))
    return rows


def _lookup(data: Any, key: str) -> Any:
    """`a.b[2].c`, `rows[name=x].c` or `diffs[task=all,name=x].c`: dict keys, list indices and list items picked
    by the values of one or more fields."""
    for part in re.findall(r"[^.\[\]]+|\[[^\]]+\]", key):
        if part.startswith("["):
            sel = part[1:-1]
            if "=" in sel:
                want = dict(kv.split("=", 1) for kv in sel.split(","))
                hits = [item for item in data if all(str(item.get(f)) == v for f, v in want.items())]
                assert len(hits) == 1, f"{key}: {len(hits)} items with {sel}"
                data = hits[0]
            else:
                data = data[int(sel)]
        else:
            data = data[part]
    return data


def _as_shown(value: float, figure: str) -> str:
    """`value` rounded as `figure` is written: `768`, `0.34`, `4e-09`."""
    if "e" in figure.lower():
        mantissa = figure.lower().split("e")[0]
        digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return f"{value:.{digits}e}"
    digits = len(figure.split(".")[1]) if "." in figure else 0
    return f"{value:.{digits}f}"


def test_as_shown_and_lookup_rules():
    assert _as_shown(767.8, "768") == "768" and _as_shown(0.343, "0.34") == "0.34"
    assert _as_shown(3.725e-09, "4e-09") == "4e-09" and _as_shown(3.8828, "3.88") == "3.88"
    data = {"rows": [{"name": "a", "v": {"x": 1}}, {"name": "b", "v": {"x": 2}}], "l": [5, 6]}
    assert _lookup(data, "rows[name=b].v.x") == 2 and _lookup(data, "l[1]") == 6
    two = {"d": [{"task": "all", "name": "a <= b.5", "v": 1}, {"task": "x", "name": "a <= b.5", "v": 2}]}
    assert _lookup(two, "d[task=x,name=a <= b.5].v") == 2


def test_headline_figures_are_few_and_labelled():
    rows = _figures()
    assert 1 <= len(rows) <= 5, "the README quotes at most a handful of headline figures (docs/RESULTS.md has all)"
    for claim, split, _, _, _ in rows:
        assert split in {"dev", "test", "held-out", "held-out configs", "-"}, f"{claim}: say which split ({split})"


@pytest.mark.parametrize("row", _figures(), ids=lambda r: Path(r[3]).stem + ":" + r[4])
def test_headline_figure_equals_its_result_file(row):
    claim, _, figure, path, key = row
    data = json.loads((ROOT / path).read_text())
    value = _lookup(data, key)
    assert isinstance(value, (int, float)), f"{path} {key} is not a number: {value!r}"
    assert _as_shown(float(value), figure) == figure, f"README says {figure} for '{claim}'; {path} {key} = {value}"


# ---- the export snippet ------------------------------------------------------------------------------------

def test_export_snippet_runs_on_a_real_export(tmp_path):
    """The README's Python block, as written, against an export named `knee`: stock transformers and
    onnxruntime in a fresh process, our package not importable."""
    import torch

    from elastic.model.config import SubnetConfig
    from elastic.export.writer import export_subnet
    from profiling.onnx_export import export_onnx
    from tests.helpers_search import tiny_elastic, tiny_tokenizer

    snippets = [body for lang, body in FENCE.findall(TEXT) if lang == "python"]
    assert len(snippets) == 1 and 'from_pretrained("knee", trust_remote_code=True)' in snippets[0]
    assert "dynabert export --run-dir runs/mine --knee --name knee" in TEXT and "runs/mine/exports/knee/" in TEXT
    torch.set_num_threads(1)
    export_subnet(tiny_elastic(2), SubnetConfig((0, 2, 3), (3, 1, 4), (40, 16, 64)), tmp_path / "knee",
                  tokenizer=tiny_tokenizer(), label_names=["neg", "pos"],
                  onnx_writer=lambda small, path: export_onnx(small, path), card_info={"metric": "accuracy"})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    res = subprocess.run([sys.executable, "-c", snippets[0]], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.fullmatch(r"(neg|pos)\n\[[01]\]\n", res.stdout), res.stdout
