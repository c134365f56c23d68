"""Write ``docs/results.md`` and its plots from the run records of ``bench/reproduce.py``.

Called by ``python bench/reproduce.py report``. Everything on the page is computed here from the JSON
records in ``docs/results/runs`` (and the benchmark JSON files in ``docs/results/bench``, if any); the
prose that interprets the numbers lives in ``docs/results_notes.md`` sections, pasted in verbatim.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
from collections import defaultdict
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHOD_COLORS = {
    "fp": "#444444", "twn": "#1f77b4", "ttq": "#17becf", "ptq": "#2ca02c", "hq": "#d62728",
    "hla_tq": "#9467bd", "alq": "#ff7f0e",
}
COSINE_METHODS = ("twn", "ptq", "hq", "hla_tq")


def load_records(root: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{table: {row: [record, ...]}}`` sorted by seed."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(glob.glob(os.path.join(root, "*", "*.json"))):
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
        out[rec["table"]][rec["row"]].append(rec)
    for rows in out.values():
        for recs in rows.values():
            recs.sort(key=lambda r: r["seed"])
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def _pm(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    m, s = mean_std([v * scale for v in values])
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"


def _size(b: float) -> str:
    return f"{b / 1e6:.2f} MB" if b >= 1e6 else f"{b / 1e3:.1f} KB"


def row_stats(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregates of one row's records."""
    s = [r["summary"] for r in recs]
    method = recs[0]["method"]
    if method == "alq":
        bits = [x["average_bits"] for x in s]
    elif method == "fp":
        bits = [32.0 for _ in s]
    else:
        bits = [x["bits_entropy"] for x in s]
    train = [x["train_seconds"] + (r.get("pretrain", {}).get("train_seconds") or 0.0)
             for x, r in zip(s, recs, strict=True)]
    return {
        "n": len(recs),
        "seeds": [r["seed"] for r in recs],
        "acc": [x["ternary_accuracy"] for x in s],
        # the test split read once after a validation-split run (``--config.final_test``), else None
        "test": [x.get("test_accuracy") for x in s],
        "sparsity": [x["sparsity"] for x in s],
        "bits": bits,
        "coded": [x["coded_bytes"] for x in s],
        "fp32": s[0]["fp32_bytes"],
        "train": train,
        "pretrain": [r.get("pretrain", {}).get("train_seconds") for r in recs],
    }


def _label(table: Any, row_name: str) -> str:
    for row in table.rows:
        if row.name == row_name:
            return row.label or row.name
    return row_name


def table_markdown(table: Any, rows: dict[str, list[dict[str, Any]]]) -> str:
    """One dataset's results table."""
    split = getattr(table, "eval_split", "test")
    tested = any(r["summary"].get("test_accuracy") is not None for recs in rows.values() for r in recs)
    test_head, test_rule = (" test accuracy % (read once) |", "---|") if tested else ("", "")
    lines = [
        f"| row | {split} accuracy % |{test_head} sparsity | bits / weight | exported size | ratio | "
        "training time | seeds |",
        f"|---|---|{test_rule}---|---|---|---|---|---|",
    ]
    for row in table.rows:
        if row.name not in rows:
            lines.append(f"| {row.label or row.name} | not run |{' |' if tested else ''} | | | | | |")
            continue
        st = row_stats(rows[row.name])
        test_cell = ""
        if tested:
            test_cell = (" " + _pm(st["test"], 100) + " |") if None not in st["test"] else " not read |"
        ratio = [st["fp32"] / c for c in st["coded"]]
        m_coded, _ = mean_std(st["coded"])
        size = _pm(st["coded"], 1e-6, 3) + " MB" if m_coded >= 1e6 else _pm(st["coded"], 1e-3, 1) + " KB"
        lines.append(
            f"| {row.label or row.name} | {_pm(st['acc'], 100)} |{test_cell} {_pm(st['sparsity'], 1, 3)} | "
            f"{_pm(st['bits'], 1, 3)} | {size} | "
            f"{mean_std(ratio)[0]:.1f}x | {mean_std(st['train'])[0]:.0f} s | "
            f"{','.join(map(str, st['seeds']))} |"
        )
    return "\n".join(lines)


def papers_markdown(table: Any, rows: dict[str, list[dict[str, Any]]]) -> str:
    """The papers' published numbers beside ours (same network and data)."""
    if not table.papers:
        return ""
    lines = [
        "Published numbers (**theirs**, not reproduced by a command here), beside ours from the table above:",
        "",
        "| method | source | their accuracy | their bits | their size | their setting | ours (this page) |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in table.papers:
        ours = "not run"
        if p["method"] in rows:
            st = row_stats(rows[p["method"]])
            tested = None not in st["test"]  # a validation-split row: its test accuracy, read once
            acc = _pm(st["test"] if tested else st["acc"], 100) + (" % test" if tested else " %")
            ours = (f"{acc}, {_pm(st['bits'], 1, 3)} bit, "
                    f"{_size(mean_std(st['coded'])[0])} exported")
            if p["method"] == "alq":
                storage = [r["summary"].get("dense2_bytes") for r in rows["alq"]]
                ours += f" ({_pm(storage, 1e-3, 1)} KB storage as the README counts it)"
        lines.append(f"| {p['method']} | {p['source']} | {p['accuracy']} | {p['bits']} | {p['size']} | "
                     f"{p['setting']} | {ours} |")
    return "\n".join(lines)


def commands_markdown(table: Any, rows: dict[str, list[dict[str, Any]]]) -> str:
    """The command behind each row (seed 0; the others differ only in ``--config.seed``)."""
    lines = []
    for row in table.rows:
        if row.name not in rows:
            continue
        rec = rows[row.name][0]
        cmd = rec["command"]
        if "--cpu_devices" not in cmd and rec.get("cpu_devices"):  # the device count the run used
            cmd += f" --cpu_devices={rec['cpu_devices']}"  # (it sets the summation order)
        seeds = ",".join(str(r["seed"]) for r in rows[row.name])
        lines.append(f"- `{row.label or row.name}` (seeds {seeds} via `--config.seed`):\n  `{cmd}`")
        if rec.get("note"):  # how the recorded run departed from a plain run of the command
            lines.append(f"  ({rec['note']})")
    return "\n".join(lines)


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """Difference of means a - b and Welch's t statistic (inf when both stds are 0)."""
    ma, sa = mean_std(a)
    mb, sb = mean_std(b)
    se = math.sqrt(sa**2 / len(a) + sb**2 / len(b))
    return ma - mb, (ma - mb) / se if se > 0 else math.copysign(math.inf, ma - mb)


def ablation_markdown(table: Any, rows: dict[str, list[dict[str, Any]]]) -> str:
    """HQ / HLA-TQ / PTQ against TWN, paired with the TWN row nearest in exported size."""
    twns = [n for n in rows if rows[n][0]["method"] == "twn"]
    if not twns:
        return ""
    lines = [
        "| method | accuracy % | exported size | TWN row of nearest size | its accuracy % | its size | "
        "difference (pp) | Welch t |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("hq", "hla_tq", "ptq", "ttq"):
        if name not in rows:
            continue
        st = row_stats(rows[name])
        size = mean_std(st["coded"])[0]
        best = min(twns, key=lambda t: abs(math.log(mean_std(row_stats(rows[t])["coded"])[0] / size)))
        tw = row_stats(rows[best])
        d, t = welch([a * 100 for a in st["acc"]], [a * 100 for a in tw["acc"]])
        t_cell = f"{t:+.1f}" if min(st["n"], tw["n"]) > 1 else "n/a (1 seed)"
        lines.append(
            f"| {name} | {_pm(st['acc'], 100)} | {_size(size)} | {_label(table, best)} | "
            f"{_pm(tw['acc'], 100)} | {_size(mean_std(tw['coded'])[0])} | {d:+.2f} | {t_cell} |"
        )
    return "\n".join(lines)


def component_markdown(table: Any, rows: dict[str, list[dict[str, Any]]], baseline: str = "twn") -> str:
    """Every row of a component ablation against its `baseline` row (or the row's own ``baseline``, e.g.
    TWN at the same learning rate): difference of mean accuracy and Welch's t over seeds, beside each
    row's zero fraction and exported size."""
    if baseline not in rows:
        return ""
    split = getattr(table, "eval_split", "test")
    lines = [
        f"| row | {split} accuracy % | zeros | exported size | vs {baseline} (pp) | Welch t | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.rows:
        if row.name not in rows:
            lines.append(f"| {row.label or row.name} | not run | | | | | |")
            continue
        st = row_stats(rows[row.name])
        acc = [a * 100 for a in st["acc"]]
        own = getattr(row, "baseline", "") or baseline
        if row.name == baseline or own not in rows:
            diff = t_cell = "—"
        else:
            base = [a * 100 for a in row_stats(rows[own])["acc"]]
            d, t = welch(acc, base)
            diff = f"{d:+.2f}" + ("" if own == baseline else f" (vs {_label(table, own)})")
            t_cell = f"{t:+.1f}" if min(len(acc), len(base)) > 1 else "n/a (1 seed)"
        lines.append(
            f"| {row.label or row.name} | {_pm(st['acc'], 100)} | {mean_std(st['sparsity'])[0]:.3f} | "
            f"{_size(mean_std(st['coded'])[0])} | {diff} | {t_cell} | {','.join(map(str, st['seeds']))} |"
        )
    return "\n".join(lines)


def plot_components(table: Any, rows: dict[str, list[dict[str, Any]]], path: str) -> None:
    """Accuracy per ablation row: one dot per seed and the mean, rows top to bottom as in the table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r for r in table.rows if r.name in rows]
    fig, ax = plt.subplots(figsize=(8.0, 0.42 * len(names) + 1.2), dpi=90)
    for i, row in enumerate(names):
        acc = np.asarray(row_stats(rows[row.name])["acc"]) * 100
        color = METHOD_COLORS.get(rows[row.name][0]["method"], "k")
        ax.plot(acc, np.full(acc.shape, -i), "o", color=color, mfc="none", ms=5)
        ax.plot([acc.mean()], [-i], "|", color=color, ms=14, mew=2)
    if "twn" in rows:
        ax.axvline(np.mean(row_stats(rows["twn"])["acc"]) * 100, color="#1f77b4", lw=0.8, ls="--")
    ax.set_yticks([-i for i in range(len(names))], [r.label or r.name for r in names], fontsize=7)
    ax.set_xlabel(f"{getattr(table, 'eval_split', 'test')} accuracy (%): seeds (o) and mean (|)")
    ax.set_title(table.title, fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _layer_keys(layer_rows: list[dict[str, Any]], suffix: str) -> list[str]:
    keys = sorted({k for r in layer_rows for k in r if k.endswith(suffix) and not k.startswith("quantizer/")})
    return keys


def plot_acc_vs_size(table: Any, rows: dict[str, list[dict[str, Any]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(5.6, 3.6), dpi=90)
    for row in table.rows:
        if row.name not in rows:
            continue
        st = row_stats(rows[row.name])
        x = np.asarray(st["coded"]) / 1e3
        y = np.asarray(st["acc"]) * 100
        color = METHOD_COLORS.get(rows[row.name][0]["method"], "k")
        marker = "s" if row.name != row.method else "o"
        ax.errorbar(x.mean(), y.mean(), xerr=x.std(ddof=1) if x.size > 1 else 0,
                    yerr=y.std(ddof=1) if y.size > 1 else 0, fmt=marker, color=color, capsize=3,
                    label=row.label or row.name, mfc="none" if marker == "s" else color)
    ax.set_xscale("log")
    # ticks at 1, 2, 5 x 10^k as plain numbers; the other minor ticks unlabelled (theirs collide)
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("exported file (KB, log scale)")
    ax.set_ylabel(f"{getattr(table, 'eval_split', 'test')} accuracy (%)")
    ax.set_title(table.title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_cosine(table: Any, rows: dict[str, list[dict[str, Any]]], path: str) -> bool:
    """Per-layer cos(latent, ternary) over training, seed 0, one panel per ternary method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in COSINE_METHODS if m in rows and rows[m][0]["layers"]]
    if not methods:
        return False
    fig, axes = plt.subplots(1, len(methods), figsize=(2.6 * len(methods), 2.9), dpi=90, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, m in zip(axes, methods, strict=True):
        layer_rows = rows[m][0]["layers"]
        keys = _layer_keys(layer_rows, "/cosine")
        cmap = plt.get_cmap("viridis")
        for i, k in enumerate(keys):
            pts = [(r["step"], r[k]) for r in layer_rows if r.get(k) is not None]
            if pts:
                s, c = zip(*pts, strict=True)
                ax.plot(s, c, color=cmap(i / max(len(keys) - 1, 1)), lw=0.9,
                        label=k.rsplit("/", 2)[0] if len(keys) <= 6 else None)
        mean = [(r["step"], r["quantizer/cosine"]) for r in layer_rows
                if r.get("quantizer/cosine") is not None]
        if mean:
            s, c = zip(*mean, strict=True)
            ax.plot(s, c, color="k", lw=2, ls="--", label="mean")
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("cos(latent, ternary)", fontsize=8)
    axes[-1].legend(fontsize=6, loc="lower right")
    fig.suptitle(f"{table.title}: per-layer cosine over training (seed 0)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_layers(table: Any, rows: dict[str, list[dict[str, Any]]], path: str) -> bool:
    """Final per-layer sparsity of every quantized row, and ALQ's bits per layer (seed 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in table.rows if r.name in rows and rows[r.name][0]["layers"]]
    if not names:
        return False
    layer_names = _layer_keys(rows[names[0]][0]["layers"], "/sparsity")
    has_alq = "alq" in names
    fig, axes = plt.subplots(1, 2 if has_alq else 1, figsize=(9 if has_alq else 5.6, 3.2), dpi=90)
    axes = np.atleast_1d(axes)
    ax = axes[0]
    width = 0.8 / len(names)
    x = np.arange(len(layer_names))
    for i, n in enumerate(names):
        last = rows[n][0]["layers"][-1]
        vals = [last.get(k, np.nan) for k in layer_names]
        ax.bar(x + i * width, vals, width, color=METHOD_COLORS.get(rows[n][0]["method"], "k"),
               label=_label(table, n), hatch="//" if n != rows[n][0]["method"] else None)
    short = [k[: -len("/sparsity")].replace("/kernel", "") for k in layer_names]
    ax.set_xticks(x + 0.4 - width / 2, short, rotation=90 if len(short) > 6 else 0, fontsize=7)
    ax.set_ylim(0, 1.05)  # room for the legend above the bars
    ax.set_ylabel("fraction of zero weights", fontsize=8)
    ax.set_title("final sparsity per layer (seed 0)", fontsize=9)
    ax.legend(fontsize=6, ncol=4, loc="upper left")
    ax.grid(alpha=0.3, axis="y")
    if has_alq:
        last = rows["alq"][0]["layers"][-1]
        keys = _layer_keys(rows["alq"][0]["layers"], "/bits")
        axes[1].bar(range(len(keys)), [last[k] for k in keys], color=METHOD_COLORS["alq"])
        axes[1].set_xticks(range(len(keys)), [k[: -len("/bits")].replace("/kernel", "") for k in keys],
                           rotation=90 if len(keys) > 6 else 0, fontsize=7)
        axes[1].set_ylabel("average bits per weight", fontsize=8)
        axes[1].set_title(f"ALQ bits per layer (average {last['quantizer/average_bits']:.3f})", fontsize=9)
        axes[1].grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _json_results(results_dir: str) -> list[tuple[str, dict[str, Any]]]:
    """``(file name, contents)`` of every ``*.json`` file in ``results_dir``, sorted by name."""
    out = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path, encoding="utf-8") as f:
            out.append((os.path.basename(path), json.load(f)))
    return out


def _markdown_table(caption: str, header: list[str], rows: list[list[Any]]) -> str:
    """A caption line, a blank line, then a markdown table of ``header`` and the cells of ``rows``."""
    lines = [caption, "", f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    lines += [f"| {' | '.join(map(str, cells))} |" for cells in rows]
    return "\n".join(lines)


def vs_torch_markdown(vs_dir: str) -> str:
    """Tables of the ``bench/vs_torch.py --json docs/results/vs_torch/NAME.json`` files."""
    parts = []
    for name, data in _json_results(vs_dir):
        v, a, rows = data["versions"], data["args"], data["rows"]
        batch = "" if a.get("batch") is None else f" --batch {a['batch']}"
        cmd = (f"python bench/vs_torch.py --models {','.join(a['models'])}{batch} --reps {a['reps']} "
               f"--warmup {a['warmup']} --json docs/results/vs_torch/{name}")
        loads = sorted({r["load_before"] for r in rows} | {r["load_after"] for r in rows})
        caption = (
            f"jax {v['jax']} ({v['device']}) vs PyTorch {v['torch']}, {v['cpus']} CPUs, float32 training "
            f"step (forward, cross-entropy, backward, SGD momentum), median of {a['reps']} interleaved "
            f"steps, load average {loads[0]}–{loads[-1]} during the timed part: `{cmd}`"
        )
        header = ["model", "batch", "variant", "ms / step", "fastest ms", "ratio to PyTorch NCHW",
                  "compile s"]
        cells = [
            [r["model"], r["batch"], r["variant"], f"{1e3 * r['step_s']:.1f}",
             f"{1e3 * r['step_min_s']:.1f}", f"{r['ratio']:.2f}",
             "-" if r["compile_s"] is None else f"{r['compile_s']:.1f}"]
            for r in rows
        ]
        parts.append(_markdown_table(caption, header, cells))
    return "\n\n".join(parts)


def bench_markdown(bench_dir: str) -> str:
    """Tables of the ``bench/suite.py --json docs/results/bench/NAME.json`` files, one per model."""
    parts = []
    header = ["method", "phase", "ms / step", "ratio to fp", "compile s", "images / s", "memory MiB",
              "exported bytes", "fp32 / file", "zeros"]
    for name, data in _json_results(bench_dir):
        dev, a = data["device"], data["args"]
        cmd = (f"python bench/suite.py --models {','.join(a['models'])} --methods {','.join(a['methods'])} "
               f"--alq-modes {','.join(a['alq_modes'])} --batch {a['batch']} --reps {a['reps']} "
               f"--warmup {a['warmup']} --dtype {a['dtype']} "
               f"--json docs/results/bench/{name}")
        parts.append(
            f"### {dev['device_count']} x {dev['device_kind']} ({dev['platform']}), jax {dev['jax']}, "
            f"{dev['cpus']} CPUs, load average at start {' '.join(map(str, dev['load_average']))}\n\n"
            f"`{cmd}`"
        )
        for model in dict.fromkeys(r["model"] for r in data["rows"]):
            rows = [r for r in data["rows"] if r["model"] == model]
            caption = (f"**{model}**, batch {rows[0]['batch']}, {rows[0]['dtype']}, median of {a['reps']} "
                       "interleaved steps:")
            cells = []
            for r in rows:
                mem = r.get("mem_bytes")
                zeros = r.get("sparsity")
                cells.append([
                    r["method"], r["phase"], f"{1e3 * r['step_s']:.1f}", f"{r['ratio']:.2f}",
                    f"{r['compile_s']:.1f}", f"{r['images_per_s']:.0f}",
                    "-" if mem is None else f"{mem / 2**20:.1f}", f"{r['export_bytes']:,}",
                    f"{r['export_ratio']:.1f}", "-" if zeros is None else f"{zeros:.3f}",
                ])
            parts.append(_markdown_table(caption, header, cells))
    return "\n\n".join(parts)


def notes_sections(path: str) -> dict[str, str]:
    """Hand-written sections of ``docs/results_notes.md`` keyed by their ``## `` heading."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        text = f.read()
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def write_report(tables: dict[str, Any], records_dir: str, out_dir: str) -> str:
    """Write ``out_dir/results.md`` and ``out_dir/results/*.png``; returns the markdown path."""
    recs = load_records(records_dir)
    img_dir = os.path.join(out_dir, "results")
    os.makedirs(img_dir, exist_ok=True)
    notes = notes_sections(os.path.join(out_dir, "results_notes.md"))
    md = [
        "# Results",
        "",
        "Every number on this page comes from a command in this repository. To regenerate it:",
        "",
        "```",
        "python bench/reproduce.py run --mnist-dir PATH/TO/mnist   # trains the rows that have no record",
        "python bench/reproduce.py report                          # rewrites this page and its plots",
        "```",
        "",
        "The first command trains every (table, row, seed) with `train.py` and condenses each run into "
        "`docs/results/runs/<table>/<row>-s<seed>.json`; the second computes the tables and plots from "
        "those records alone. Each row's command is listed under its table.",
        "",
        notes.get("How to read the tables", ""),
    ]
    for name, table in tables.items():
        rows = recs.get(name)
        md += ["", f"## {table.title}", ""]
        if not rows:
            md.append(f"Not run yet: `python bench/reproduce.py run --tables {name}`.")
            continue
        md += [table.notes, "", table_markdown(table, rows), ""]
        papers = papers_markdown(table, rows)
        if papers:
            md += [papers, ""]
        plot_acc_vs_size(table, rows, os.path.join(img_dir, f"acc_vs_size_{name}.png"))
        md += [f"![accuracy vs size, {name}](results/acc_vs_size_{name}.png)", ""]
        if plot_cosine(table, rows, os.path.join(img_dir, f"cosine_{name}.png")):
            md += [f"![per-layer cosine over training, {name}](results/cosine_{name}.png)", ""]
        if plot_layers(table, rows, os.path.join(img_dir, f"layers_{name}.png")):
            md += [f"![per-layer sparsity and bits, {name}](results/layers_{name}.png)", ""]
        if getattr(table, "eval_split", "test") == "validation" and "twn" in rows:
            plot_components(table, rows, os.path.join(img_dir, f"components_{name}.png"))
            md += ["Each row against TWN (positive: better than TWN; |t| < 2 is within seed noise):", "",
                   component_markdown(table, rows), "",
                   f"![accuracy per component, {name}](results/components_{name}.png)", ""]
            abl = ""
        else:
            abl = ablation_markdown(table, rows)
        if abl:
            md += ["Each ternary method against the TWN row nearest to it in exported size (positive: "
                   "better than TWN; |t| < 2 is within seed noise at 3 seeds):", "", abl, ""]
        if notes.get(name):
            md += [notes[name], ""]
        md += ["Commands:", "", commands_markdown(table, rows)]
    for heading in ("Ablation: does HQ or HLA-TQ beat plain TWN at equal size?", "Benchmarks",
                    "Against PyTorch", "Expected runtimes of the CIFAR-10 and ImageNet configs"):
        if heading in notes or heading in ("Benchmarks", "Against PyTorch"):
            md += ["", f"## {heading}", "", notes.get(heading, "")]
            if heading == "Benchmarks":
                md += ["", bench_markdown(os.path.join(img_dir, "bench"))]
            if heading == "Against PyTorch":
                md += ["", vs_torch_markdown(os.path.join(img_dir, "vs_torch"))]
    path = os.path.join(out_dir, "results.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(md).rstrip() + "\n")
    return path
