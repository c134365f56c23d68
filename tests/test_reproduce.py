"""The results sweep (bench/reproduce.py): every row's command is a valid run config, and the report's
aggregates are right."""

import ast
import importlib
import json
import math
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import reproduce, results_report  # noqa: E402
from hqjax.train.config import validate  # noqa: E402


def _config_of(command: list[str]):
    """The config `train.py` would run for `command` (its ``--config`` file, method and overrides)."""
    spec = command[command.index("--config") + 1]
    path, method = spec.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    c = module.get_config(method)
    for arg in command:
        if not arg.startswith("--config."):
            continue
        key, value = arg[len("--config."):].split("=", 1)
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass  # a plain string
        *parents, leaf = key.split(".")
        node = c
        for p in parents:
            node = node[p]
        assert leaf in node, f"{key} is not a field of the config"
        node[leaf] = value
    return c


@pytest.mark.parametrize(
    "table,row",
    [(t.name, r) for t in reproduce.TABLES.values() for r in t.rows],
    ids=lambda x: x if isinstance(x, str) else x.name,
)
def test_every_row_command_is_a_valid_config(table, row):
    t = reproduce.TABLES[table]
    cmd = reproduce.row_command(t, row, seed=1, workdir="runs/x", mnist_dir="/data/mnist")
    c = _config_of(cmd)
    assert c.method == row.method and c.seed == 1
    if t.mnist:
        assert c.data_dir == "/data/mnist"
    validate(c)  # raises on a wrong field or value (for ALQ: num_epochs must equal the pipeline's length)


def _record(row, method, seed, acc, coded, layers=()):
    return {
        "table": "mnist_lenet5", "row": row, "method": method, "seed": seed, "command": f"train {row} {seed}",
        "summary": {"ternary_accuracy": acc, "sparsity": 0.5, "bits_entropy": 1.5, "average_bits": 0.4,
                    "coded_bytes": coded, "fp32_bytes": 1000.0, "dense2_bytes": coded, "train_seconds": 10.0},
        "evals": [], "layers": list(layers),
    }


def test_report_aggregates_mean_and_sample_std(tmp_path):
    recs = tmp_path / "runs" / "mnist_lenet5"
    recs.mkdir(parents=True)
    layer = {"step": 5, "conv1/kernel/cosine": 0.9, "conv1/kernel/sparsity": 0.5, "quantizer/cosine": 0.9}
    accs = {"hq": [0.97, 0.98, 0.99], "twn": [0.95, 0.96, 0.97], "twn_s70": [0.90, 0.91, 0.92]}
    sizes = {"hq": 100.0, "twn": 200.0, "twn_s70": 110.0}
    for row, values in accs.items():
        for s, a in enumerate(values):
            rec = _record(row, "twn" if row.startswith("twn") else row, s, a, sizes[row], [layer])
            (recs / f"{row}-s{s}.json").write_text(json.dumps(rec))
    loaded = results_report.load_records(str(tmp_path / "runs"))
    st = results_report.row_stats(loaded["mnist_lenet5"]["hq"])
    assert st["seeds"] == [0, 1, 2]
    m, s = results_report.mean_std(st["acc"])
    assert m == pytest.approx(0.98) and s == pytest.approx(np.std([0.97, 0.98, 0.99], ddof=1))
    table = reproduce.TABLES["mnist_lenet5"]
    md = results_report.table_markdown(table, loaded["mnist_lenet5"])
    assert "| hq (AGP mask frozen) | 98.00 ± 1.00 |" in md and "| alq | not run |" in md
    # HQ is paired with the TWN row nearest in size (110 B, not 200 B): +7 pp
    abl = results_report.ablation_markdown(table, loaded["mnist_lenet5"])
    hq_line = next(line for line in abl.splitlines() if line.startswith("| hq |"))
    assert "twn, threshold" in hq_line and "+7.00" in hq_line
    d, t = results_report.welch([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert d == 0 and t == 0
    assert math.isinf(results_report.welch([2.0, 2.0], [1.0, 1.0])[1])


def test_report_writes_page_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    recs = tmp_path / "runs" / "mnist_lenet5"
    recs.mkdir(parents=True)
    layer = {"step": 5, "conv1/kernel/cosine": 0.9, "conv1/kernel/sparsity": 0.5, "quantizer/cosine": 0.9}
    for s in range(2):
        (recs / f"hq-s{s}.json").write_text(json.dumps(_record("hq", "hq", s, 0.9 + s / 100, 100.0, [layer])))
    out = tmp_path / "docs"
    path = results_report.write_report(reproduce.TABLES, str(tmp_path / "runs"), str(out))
    text = open(path, encoding="utf-8").read()
    assert "| hq (AGP mask frozen) | 90.50 ± 0.71 |" in text and "train hq 0" in text
    for name in ("acc_vs_size_mnist_lenet5.png", "cosine_mnist_lenet5.png", "layers_mnist_lenet5.png"):
        assert (out / "results" / name).stat().st_size > 1000


def test_committed_page_is_what_the_committed_records_give(tmp_path):
    """docs/results.md is exactly the report of docs/results/runs (and results/bench, vs_torch): no number
    on the page without its record, and every record's command is the one its table would run."""
    pytest.importorskip("matplotlib")
    import shutil

    docs = os.path.join(ROOT, "docs")
    out = tmp_path / "docs"
    (out / "results").mkdir(parents=True)
    shutil.copy(os.path.join(docs, "results_notes.md"), out / "results_notes.md")
    for sub in ("bench", "vs_torch"):
        shutil.copytree(os.path.join(docs, "results", sub), out / "results" / sub)
    path = results_report.write_report(reproduce.TABLES, os.path.join(docs, "results", "runs"), str(out))
    with open(path, encoding="utf-8") as f, open(os.path.join(docs, "results.md"), encoding="utf-8") as g:
        assert f.read() == g.read(), "docs/results.md is stale: run `python bench/reproduce.py report`"
    records = results_report.load_records(os.path.join(docs, "results", "runs"))
    assert set(records) == set(reproduce.TABLES)
    for name, rows in records.items():
        table = reproduce.TABLES[name]
        by_name = {r.name: r for r in table.rows}
        if table.eval_split == "test":  # a results table is complete: every row at its seeds
            assert set(rows) == set(by_name), name
        else:  # an ablation on validation may be in progress: known rows, seeds from 0 up
            assert set(rows) <= set(by_name), name
        for row, recs in rows.items():
            seeds = sorted(r["seed"] for r in recs)
            want = list(table.seeds) if table.eval_split == "test" else list(range(len(seeds)))
            assert seeds == want, (name, row)
            held_out = [r["summary"].get("validation_split", 0) > 0 for r in recs]
            assert held_out == [table.eval_split == "validation"] * len(recs), (name, row)
            for rec in recs:  # trained with the command the table gives today
                wd = f"runs/results/{name}/{row}-s{rec['seed']}"
                want = reproduce.public_command(table, by_name[row], rec["seed"], wd, rec["cpu_devices"])
                assert rec["command"] == want, (name, row, rec["seed"])


def test_verify_compares_every_figure_but_the_timings():
    rec = {"summary": {"ternary_accuracy": 0.98, "coded_bytes": 100.0, "train_seconds": 5.0},
           "evals": [{"step": 1, "accuracy": 0.5}], "layers": []}
    same = json.loads(json.dumps(rec))
    same["summary"]["train_seconds"] = 9.0
    assert reproduce.differences(rec, same) == []
    other = json.loads(json.dumps(rec))
    other["summary"]["coded_bytes"] = 101.0
    other["evals"].append({"step": 2, "accuracy": 0.6})
    other["summary"]["cosine"] = 0.9
    diff = reproduce.differences(rec, other)
    assert "/summary/coded_bytes: recorded 100.0, rerun 101.0" in diff
    assert "/evals (1 entries recorded, 2 rerun)" in diff
    assert "/summary/cosine (only in the rerun)" in diff
    assert len(diff) == 3


def test_verify_refuses_a_record_whose_command_changed(tmp_path, monkeypatch):
    table = reproduce.TABLES["digits"]
    row = table.rows[0]
    monkeypatch.setattr(reproduce, "RECORDS", str(tmp_path))
    os.makedirs(tmp_path / "digits")
    with open(reproduce.record_path("digits", row.name, 0), "w", encoding="utf-8") as f:
        json.dump({"command": "python train.py --something-else", "cpu_devices": 1}, f)
    args = type("A", (), {"workdir": str(tmp_path / "wd"), "mnist_dir": ""})()
    same, status = reproduce.verify_one(table, row, 0, args)
    assert not same and status.startswith("CHANGED digits/")
    same, status = reproduce.verify_one(table, table.rows[1], 0, args)
    assert not same and status.startswith("MISSING")


def test_every_row_baseline_is_a_twn_row_of_its_table():
    """A row's baseline is TWN; in the validation tables (the ablations) at the row's own learning rate,
    in the test tables each method at the rate validation chose for it."""
    for table in reproduce.TABLES.values():
        names = {r.name: r for r in table.rows}
        for row in table.rows:
            if row.baseline:
                assert row.baseline in names, (table.name, row.name)
                assert names[row.baseline].method == "twn"
                if table.eval_split == "validation":
                    lr = dict(row.overrides).get("learning_rate")
                    assert dict(names[row.baseline].overrides).get("learning_rate") == lr


def test_condense_times_a_resumed_run_as_the_sum_of_its_invocations(tmp_path):
    rows = [{"step": 5, "split": "eval", "epoch": 1, "ternary_accuracy": 0.5},
            {"step": 5, "split": "summary", "ternary_accuracy": 0.5, "train_seconds": 30.0,
             "wall_seconds": 40.0, "stopped_early": True},
            {"step": 9, "split": "summary", "ternary_accuracy": 0.7, "train_seconds": 20.0,
             "wall_seconds": 25.0, "stopped_early": False},
            {"step": 9, "split": "summary", "ternary_accuracy": 0.7, "train_seconds": 0.0,
             "wall_seconds": 3.0, "stopped_early": False, "test_accuracy": 0.65}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    s = reproduce.condense(str(tmp_path))["summary"]
    assert s["train_seconds"] == 50.0 and s["wall_seconds"] == 68.0
    assert s["step"] == 9 and s["test_accuracy"] == 0.65  # everything else from the last invocation


def test_a_validation_table_with_a_final_test_shows_both_accuracies():
    table = reproduce.TABLES["alq_full"]
    rec = _record("alq", "alq", 0, 0.99, 25_000.0)
    rec["summary"]["test_accuracy"] = 0.992
    rows = {"alq": [rec]}
    md = results_report.table_markdown(table, rows)
    assert "| validation accuracy % | test accuracy % (read once) |" in md
    line = next(x for x in md.splitlines() if x.startswith("| alq (the config"))
    assert "| 99.00 | 99.20 |" in line
    assert "| not run | |" in next(x for x in md.splitlines() if x.startswith("| alq, pruning"))
    assert "99.20 % test" in results_report.papers_markdown(table, rows)  # the README is a test figure
