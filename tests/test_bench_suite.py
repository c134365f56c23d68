"""Smoke test of the benchmark suite (bench/suite.py) on its smallest setting."""

import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import suite  # noqa: E402


def test_suite_smallest_setting(tmp_path, capsys):
    out = tmp_path / "suite.json"
    argv = ["--models", "lenet5", "--methods", "fp,twn", "--reps", "2", "--warmup", "2", "--batch", "16"]
    rows = suite.main([*argv, "--json", str(out)])

    assert [(r["model"], r["method"]) for r in rows] == [("lenet5", "fp"), ("lenet5", "twn")]
    for r in rows:
        for key in ("step_s", "step_min_s", "compile_s", "images_per_s", "mem_bytes"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["method"], key, r[key])
        assert math.isfinite(r["loss"])
        assert r["steps"] == 2 + 2  # warm-up + timed steps, the state that was exported
        assert r["fp32_bytes"] == 4 * 431_080  # LeNet-5's parameters
    fp, twn = rows
    assert fp["ratio"] == 1.0
    assert fp["export_bytes"] >= fp["fp32_bytes"]  # stored as float32, plus the container
    assert twn["export_bytes"] < twn["fp32_bytes"] / 10  # ternary codes + scales
    assert 0.0 < twn["sparsity"] < 1.0 and 0.0 < twn["bits_per_weight"] <= 2.0

    saved = json.loads(out.read_text())
    assert saved["device"]["device_count"] >= 1 and saved["rows"] == json.loads(json.dumps(rows))
    printed = capsys.readouterr().out
    assert "lenet5: batch 16" in printed and saved["device"]["device_kind"] in printed


def test_vs_torch_without_torch_says_so_and_returns_nothing(monkeypatch, capsys):
    from bench import vs_torch

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert vs_torch.main(["--models", "lenet5", "--reps", "1"]) == []
    assert "PyTorch is not installed" in capsys.readouterr().out


def test_vs_torch_networks_match_hqjax_parameter_counts():
    torch = __import__("pytest").importorskip("torch")
    import jax

    from bench import vs_torch
    from hqjax import models

    for name in vs_torch.MODELS:
        spec = models.spec(name)
        shape = jax.ShapeDtypeStruct((1, *spec.input_shape), "float32")
        model = models.get(name)
        variables = jax.eval_shape(lambda x, m=model: m.init(jax.random.key(0), x, train=False), shape)
        net = vs_torch.torch_model(name, torch)
        assert sum(p.numel() for p in net.parameters()) == models.count_params(variables), name
