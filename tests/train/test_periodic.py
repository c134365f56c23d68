"""`hqjax.train.periodic.Periodic`: when every-N-steps / every-M-epochs / last-step work is due."""

import pytest

from hqjax.train.periodic import Periodic


def _due(p: Periodic) -> list[int]:
    return [s for s in range(1, p.total_steps + 1) if p.due(s)]


def test_every_epochs_and_the_last_step():
    assert _due(Periodic(steps_per_epoch=4, total_steps=20, every_epochs=2)) == [8, 16, 20]
    assert _due(Periodic(steps_per_epoch=4, total_steps=20, every_epochs=2, at_end=False)) == [8, 16]


def test_every_steps_alone_and_combined_with_epochs():
    assert _due(Periodic(steps_per_epoch=5, total_steps=12, every_steps=5, at_end=False)) == [5, 10]
    assert _due(Periodic(steps_per_epoch=5, total_steps=15, every_steps=4, every_epochs=3)) == [4, 8, 12, 15]


def test_all_off_but_the_end():
    assert _due(Periodic(steps_per_epoch=3, total_steps=9)) == [9]
    assert _due(Periodic(steps_per_epoch=3, total_steps=9, at_end=False)) == []


def test_the_loops_schedule_matches_the_rules_it_replaced():
    """The log/eval/stats/checkpoint rules the loop used before `Periodic`, written out, agree with it."""
    from hqjax.train.loop import _schedule

    class C:
        log_every_steps, layer_stats_every_steps, layer_stats_every_epochs = 3, 7, 2
        checkpoint_every_steps, checkpoint_every_epochs = 0, 3

    spe, total = 5, 40
    due = _schedule(C, spe, total)
    for done in range(1, total + 1):
        epoch_end, last = done % spe == 0, done == total
        epoch = done // spe
        assert due["log"].due(done) == (done % 3 == 0 or last)
        assert due["eval"].due(done) == (epoch_end or last)
        assert due["stats"].due(done) == (done % 7 == 0 or ((epoch_end or last) and (epoch % 2 == 0 or last)))
        assert due["checkpoint"].due(done) == ((epoch_end or last) and (epoch % 3 == 0 or last))


@pytest.mark.parametrize("kwargs", [
    dict(steps_per_epoch=0, total_steps=3),
    dict(steps_per_epoch=1, total_steps=-1),
    dict(steps_per_epoch=1, total_steps=3, every_steps=-2),
])
def test_bad_values_are_refused(kwargs):
    with pytest.raises(ValueError, match="must be"):
        Periodic(**kwargs)
