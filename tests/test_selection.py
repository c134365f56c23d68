"""Leaf selection by regex rules over tree paths (Linen dicts and NNX state alike)."""

import jax.numpy as jnp
import pytest

from hqjax.selection import Selection, leaf_paths, path_str, select, selected_paths


def _params():
    return {
        "Conv_0": {"kernel": jnp.ones((3, 3, 1, 4)), "bias": jnp.ones(4)},
        "BatchNorm_0": {"scale": jnp.ones(4), "bias": jnp.ones(4)},
        "Dense_2": {"kernel": jnp.ones((4, 8)), "bias": jnp.ones(8)},
        "Dense_10": {"kernel": jnp.ones((8, 3)), "bias": jnp.ones(3)},
    }


def test_default_quantizes_kernels_only():
    assert selected_paths(_params()) == ("Conv_0/kernel", "Dense_2/kernel", "Dense_10/kernel")
    mask = select(_params())
    assert mask["BatchNorm_0"] == {"scale": False, "bias": False}
    assert mask["Conv_0"] == {"kernel": True, "bias": False}


def test_natural_path_order_decides_first_and_last():
    # Dense_10 sorts after Dense_2 (digits compared as numbers), so it is the last layer.
    sel = Selection(quantize_first=False, quantize_last=False)
    assert sel.paths(_params()) == ("Dense_2/kernel",)


def test_first_and_last_named_by_rule():
    sel = Selection(quantize_last=False, last=r"^Dense_2/")
    assert sel.paths(_params()) == ("Conv_0/kernel", "Dense_10/kernel")


def test_include_exclude_min_ndim():
    sel = Selection(include=(r"kernel$", r"BatchNorm_0/scale$"), exclude=r"^Conv", min_ndim=1)
    assert sel.paths(_params()) == ("BatchNorm_0/scale", "Dense_2/kernel", "Dense_10/kernel")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(include=r"nope"), "include rule 'nope' matches no leaf"),
        (dict(exclude=r"^Head/"), "exclude rule '\\^Head/' matches no leaf"),
        (dict(last=r"nothing", quantize_last=False), "`last` rule 'nothing' matches none"),
        (dict(include=r"bias$"), "No leaf is selected"),
    ],
)
def test_rule_matching_nothing_is_an_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Selection(**kwargs).paths(_params())


def test_bad_regex_fails_at_construction():
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Selection(include="(")


def test_nothing_left_is_an_error():
    params = {"Dense_0": {"kernel": jnp.ones((2, 2))}}
    with pytest.raises(ValueError, match="leaves nothing to quantize"):
        Selection(quantize_first=False).paths(params)


def test_nnx_state_paths_match_linen_names():
    from flax import nnx

    class M(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(4, 8, rngs=rngs)
            self.bn = nnx.BatchNorm(8, rngs=rngs)
            self.l2 = nnx.Linear(8, 3, rngs=rngs)

    state = nnx.state(M(nnx.Rngs(0)), nnx.Param)
    assert selected_paths(state) == ("l1/kernel", "l2/kernel")
    assert selected_paths(nnx.as_pure(state)) == ("l1/kernel", "l2/kernel")
    assert [p for p, _ in leaf_paths(state)] == [
        "bn/bias",
        "bn/scale",
        "l1/bias",
        "l1/kernel",
        "l2/bias",
        "l2/kernel",
    ]


def test_path_str_of_sequences():
    import jax

    flat = jax.tree_util.tree_flatten_with_path({"layers": [{"kernel": 1}, {"kernel": 2}]})[0]
    assert [path_str(p) for p, _ in flat] == ["layers/0/kernel", "layers/1/kernel"]


def test_selection_is_hashable_static_config():
    assert hash(Selection()) == hash(Selection())
    assert Selection(include="kernel$").include == ("kernel$",)
