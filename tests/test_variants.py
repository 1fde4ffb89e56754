"""Deployment variants: --target/--precisions/--runtimes expand to scenario keys, bad ones are refused early
naming the flag, and every variant has its own eval-cache entries."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app.cli.main import main
from elastic.model.config import SubnetConfig
from profiling.variants import expand_variants, parse_variants, resolve_variants, variant_columns
from search.evaluator import RunContext
from search.options import SearchOptions
from tests.helpers_search import make_tiny_run


def test_target_expands_to_every_precision_runtime_pair():
    assert expand_variants("cpu-t2-b1-s64", "fp32,int8", "eager,ort") == (
        "cpu-eager-t2-b1-s64", "cpu-ort-t2-b1-s64", "cpu-eager-int8-t2-b1-s64", "cpu-ort-int8-t2-b1-s64")
    # half precision exists only in eager cuda: that pair is left out, the others stay
    assert expand_variants("cuda-b1-s64", ["fp32", "fp16"], ["eager", "ort"]) == (
        "cuda-eager-fp32-b1-s64", "cuda-ort-fp32-b1-s64", "cuda-eager-fp16-b1-s64")
    assert resolve_variants(target="cpu-t2-b1-s64") == ("cpu-eager-t2-b1-s64",)  # defaults fp32, eager
    assert variant_columns("cpu-ort-int8-t2-b1-s64") == {"scenario": "cpu-ort-int8-t2-b1-s64", "precision": "int8",
                                                         "runtime": "ort"}
    assert variant_columns("cuda-eager-fp16-b1-s64")["precision"] == "fp16"


@pytest.mark.parametrize("kwargs, flag", [
    (dict(target="cpu-b1-s64"), "--target"),  # cpu names its threads
    (dict(target="gpu-t2-b1-s64"), "--target"),
    (dict(target="cpu-t2-b1-s64", precisions="int4"), "--precisions"),
    (dict(target="cpu-t2-b1-s64", precisions="fp16"), "--precisions"),  # half precision on cpu
    (dict(target="cpu-t2-b1-s64", precisions="fp32,fp32"), "--precisions"),
    (dict(target="cpu-t2-b1-s64", runtimes="tensorrt"), "--runtimes"),
    (dict(target="cpu-t2-b1-s64", runtimes=""), "--runtimes"),
    (dict(precisions="int8"), "--precisions"),  # needs --target
    (dict(runtimes="ort"), "--runtimes"),
    (dict(scenario="cpu-eager-t2-b1-s64", target="cpu-t2-b1-s64"), "--scenario"),
    (dict(scenario="cpu-eager-t2-b1-s64,cpu-ort-int8-t1-b1-s64"), "--scenario"),  # two targets
    (dict(scenario="cpu-eager-t2-b1-s64,cpu-eager-t2-b1-s64"), "--scenario"),
    (dict(scenario="cpu-tvm-t2-b1-s64"), "--scenario"),
])
def test_bad_variants_are_refused_naming_the_flag(kwargs, flag):
    with pytest.raises(ValueError, match=flag.replace("-", r"\-")):
        resolve_variants(**kwargs)


def test_search_options_take_a_variant_list(tmp_path):
    opts = SearchOptions(run_dir=tmp_path, scenario=" cpu-eager-t1-b1-s16, cpu-ort-int8-t1-b1-s16")
    assert opts.variants == ("cpu-eager-t1-b1-s16", "cpu-ort-int8-t1-b1-s16")
    assert opts.name == "search-cpu-eager-t1-b1-s16+cpu-ort-int8-t1-b1-s16"
    single = SearchOptions(run_dir=tmp_path, scenario="cpu-eager-t1-b1-s16")
    assert single.variants == ("cpu-eager-t1-b1-s16",) and single.name == "search-cpu-eager-t1-b1-s16"
    with pytest.raises(ValueError, match="--scenario"):
        parse_variants("cpu-eager-t1-b1-s16,cuda-eager-fp16-b1-s16")


def test_cli_refuses_bad_variant_flags_before_writing(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    assert main(["search", "--run-dir", str(run), "--precisions", "int8"]) != 0
    assert "--precisions needs --target" in capsys.readouterr().err
    assert main(["profile", "--run-dir", str(run), "--target", "cpu-t2-b1-s64", "--runtimes", "eager,onnx"]) != 0
    assert "--runtimes: 'onnx'" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == []


def test_cache_keys_differ_per_variant(tmp_path):
    torch.set_num_threads(1)
    ctx = RunContext(make_tiny_run(tmp_path))
    cfg = SubnetConfig((0, 2), (2, 2), (32, 32))
    keys = {v: ctx.evaluator(variant=v).cache.key(cfg, "dev", None)
            for v in expand_variants("cpu-t1-b1-s16", "fp32,int8", "eager,ort")}
    assert len(set(keys.values())) == 4
    # fp32 eager keeps the key it always had (existing caches stay valid); the others name their variant
    assert keys["cpu-eager-t1-b1-s16"] == ctx.evaluator().cache.key(cfg, "dev", None)
    assert "cpu-int8-ort:" in keys["cpu-ort-int8-t1-b1-s16"]
    # the metric does not depend on threads/batch/length: another target's INT8 ORT shares the entry
    assert ctx.evaluator(variant="cpu-ort-int8-t2-b8-s32").cache.key(cfg, "dev", None) == keys["cpu-ort-int8-t1-b1-s16"]
    assert all(k.startswith(ctx.cache_namespace()) for k in keys.values())
    assert Path(ctx.run_dir / "eval_cache.jsonl").exists() is False  # keys only: nothing evaluated
