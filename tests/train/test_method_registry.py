"""The training program's method registry (`hqjax.train.methods`): one spec per method, asked everywhere."""

import ast
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hqjax
from configs.common import METHODS as CONFIG_METHODS
from configs.default import get_config
from hqjax.train import methods
from hqjax.train.config import validate

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "hqjax")


def test_every_method_has_one_spec_and_the_configs_list_the_same():
    names = methods.method_names()
    assert names == CONFIG_METHODS
    assert len(set(names)) == len(names)
    ternary = {n for n, s in methods.METHOD_SPECS.items() if s.family == "ternary"}
    assert ternary == set(hqjax.METHODS)  # each ternary spec is a recipe of the library
    assert [s.name for s in methods.METHOD_SPECS.values() if not s.quantized] == ["fp"]
    assert [s.name for s in methods.METHOD_SPECS.values() if s.family == "multibit"] == ["alq"]


def test_unknown_method_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"config.method='hqq' is not valid; choose one of 'fp', 'twn'"):
        methods.get_spec("hqq")
    c = get_config("hq")
    c.method = "hqq"
    with pytest.raises(ValueError, match="config.method='hqq' is not valid"):
        validate(c)
    with pytest.raises(ValueError, match="family 'binary' is not one of"):
        methods.MethodSpec("x", "binary", methods.make_optimizer)


@pytest.mark.parametrize("name", methods.method_names())
def test_each_spec_builds_its_optimizer_and_forwards(name):
    c = get_config(name)
    validate(c)
    spec = methods.get_spec(name)
    params = {"conv_init": {"kernel": jnp.asarray(np.random.default_rng(0).normal(size=(3, 3, 1, 8)),
                                                  jnp.float32)},
              "head": {"kernel": jnp.ones((8, 10), jnp.float32)}}
    tx = spec.build_optimizer(c, 11)
    state = tx.init(params)
    train_fwd, eval_fwd, latent_fwd = spec.forwards()
    for fwd in (train_fwd, eval_fwd, latent_fwd):
        out = fwd(params, state)
        assert jax.tree.structure(out) == jax.tree.structure(params)
    holder = type("S", (), {"opt_state": state})()
    if spec.quantized:
        assert eval_fwd is hqjax.ternary_params and spec.opt_state(holder) is state
        q = np.asarray(eval_fwd(params, state)["conv_init"]["kernel"])
        assert len(np.unique(np.abs(q[..., 0]))) <= 2 or spec.family == "multibit"
    else:
        assert eval_fwd(params, state) is params and spec.opt_state(holder) is None
    assert spec.storage in ("full precision", "ternary", "multi-bit")
    assert (spec.num_epochs is not None) == (name == "alq") == spec.pretrains


def test_frozen_batchnorm_epochs_are_alq_pruning_epochs_with_batchnorm_only():
    c = get_config("alq")
    stats = {"bn": {"mean": jnp.zeros(3)}}
    frozen = methods.frozen_bn_epochs(c, 11, stats)
    pipe = hqjax.train.optim.alq_schedule(c).pipeline(11)
    assert frozen == {e for e, (mode, _, _) in enumerate(pipe.epochs) if mode == "prune"} and frozen
    assert methods.frozen_bn_epochs(c, 11, {}) == frozenset()
    assert methods.frozen_bn_epochs(get_config("hq"), 11, stats) == frozenset()


def method_comparisons(source: str) -> list[int]:
    """Lines of `source` that compare a ``.method`` / ``["method"]`` with a constant."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        attr = any(isinstance(s, ast.Attribute) and s.attr == "method" for s in sides)
        item = any(isinstance(s, ast.Subscript) and isinstance(s.slice, ast.Constant)
                   and s.slice.value == "method" for s in sides)
        if (attr or item) and any(isinstance(s, ast.Constant) for s in sides):
            lines.append(node.lineno)
    return lines


def test_no_module_compares_method_names_outside_the_registry():
    """``config.method == 'alq'`` and the like live in `hqjax.train.methods` only."""
    assert method_comparisons("if config.method == 'fp':\n    pass\nx = s['method'] != 'alq'\n") == [1, 3]
    assert method_comparisons("spec = get_spec(config.method)\nif spec.quantized:\n    pass\n") == []
    found = []
    for directory, _, files in os.walk(ROOT):
        for f in files:
            path = os.path.join(directory, f)
            if f.endswith(".py") and not path.endswith(os.path.join("train", "methods.py")):
                with open(path, encoding="utf-8") as fh:
                    found += [f"{os.path.relpath(path, ROOT)}:{n}" for n in method_comparisons(fh.read())]
    assert found == []
