"""The worker times blocks of iterations, not single ones; the runner reuses a calibrated block size.

Every clock here is fake (a counter the fake step advances): nothing depends on how fast this
machine is, and no test asserts a measured time.
"""
from __future__ import annotations

import gc
import json
import sys
import types

import pytest

from deltaprop.bench import runner, worker


class FakeClock:
    """A timer that only moves when the fake step runs: call i costs costs[i % len(costs)] s."""

    def __init__(self, costs):
        self.now = 0.0
        self.costs = costs
        self.calls = 0
        self.reads = 0
        self.gc_enabled = []

    def timer(self):
        self.reads += 1
        return self.now

    def step(self):
        self.gc_enabled.append(gc.isenabled())
        self.now += self.costs[self.calls % len(self.costs)]
        self.calls += 1
        return self.calls


def test_time_blocks_times_each_block_as_a_whole():
    clock = FakeClock([0.001, 0.002, 0.003, 0.010])  # one call in four is slow (a "collection")
    times, last = worker.time_blocks(clock.step, block=4, blocks=3, timer=clock.timer)
    assert clock.calls == 4 * 3  # block * blocks calls, nothing more
    assert clock.reads == 2 * 3  # the clock is read around each block, never per iteration
    assert times == pytest.approx([0.016 / 4] * 3)  # block time / block: the slow call is included
    assert last == 12
    assert all(clock.gc_enabled)  # the garbage collector stays on while blocks run


def test_time_blocks_reports_block_time_over_block_size():
    clock = FakeClock([0.5, 0.25, 0.25, 1.0, 2.0, 0.0])
    times, _ = worker.time_blocks(clock.step, block=3, blocks=2, timer=clock.timer)
    assert clock.calls == 6
    assert times == pytest.approx([1.0 / 3, 3.0 / 3])


def test_autorange_picks_the_first_size_that_lasts_long_enough():
    clock = FakeClock([0.001])
    # 1, 2, 5, 10, 20, 50, 100, 200 calls: 200 x 1 ms is the first block of at least 0.2 s
    assert worker.autorange(clock.step, 0.2, timer=clock.timer) == 200
    assert clock.calls == 1 + 2 + 5 + 10 + 20 + 50 + 100 + 200
    slow = FakeClock([0.7])
    assert worker.autorange(slow.step, 0.2, timer=slow.timer) == 1 and slow.calls == 1
    free = FakeClock([0.0])  # a step that never takes any time stops at max_block
    assert worker.autorange(free.step, 0.2, timer=free.timer, max_block=50) == 50


def test_autorange_starts_from_the_size_it_is_given():
    clock = FakeClock([0.001])
    assert worker.autorange(clock.step, 0.2, timer=clock.timer, start=200) == 200
    assert clock.calls == 200  # long enough at once: one trial
    clock = FakeClock([0.001])
    assert worker.autorange(clock.step, 0.2, timer=clock.timer, start=500) == 500  # never goes down
    clock = FakeClock([0.001])  # too short (the round it came from was slow): up the ladder from there
    assert worker.autorange(clock.step, 0.2, timer=clock.timer, start=30) == 200
    assert clock.calls == 30 + 50 + 100 + 200


@pytest.fixture
def fake_lib(monkeypatch):
    """A library 'fakelib' with a mazur case whose step counts its calls (module in sys.modules)."""
    counter = {"calls": 0}
    mod = types.ModuleType("deltaprop.bench.lib_fake")

    def mazur():
        def step():
            counter["calls"] += 1
            return 0.5

        return step

    mod.mazur = mazur
    monkeypatch.setitem(sys.modules, "deltaprop.bench.lib_fake", mod)
    monkeypatch.setitem(worker.LIBS, "fakelib", ("lib_fake", None))
    monkeypatch.setitem(worker.APPLIES, "mazur", worker.APPLIES["mazur"] + ["fakelib"])
    return counter


def test_measure_runs_first_step_warmup_then_blocks(fake_lib):
    res = worker.measure("fakelib", "mazur", warmup=2, blocks=3, threads=1, block=4)
    assert res["status"] == "ok", res
    assert fake_lib["calls"] == 1 + 2 + 4 * 3  # the first-loss call, warm-up, blocks x block
    assert len(res["times"]) == 3
    ex = res["extra"]
    assert (ex["warmup"], ex["block"], ex["blocks"]) == (2, 4, 3)
    assert "calibrated" not in ex and ex["first_loss"] == ex["last_loss"] == 0.5
    assert res["value"] == sorted(res["times"])[1]  # the median over blocks
    assert ex["block_s"] == pytest.approx(res["value"] * 4)


def test_measure_calibrates_when_no_block_is_given(fake_lib):
    res = worker.measure("fakelib", "mazur", warmup=0, blocks=2, threads=1, block=None, min_block_time=1e-12)
    assert res["status"] == "ok", res
    ex = res["extra"]
    assert ex["calibrated"] is True and ex["block"] >= 1
    assert fake_lib["calls"] >= 1 + 2 * ex["block"]


def _block_echo_command(python, lib, case, threads, quick, start_block=None):
    """A fake worker whose calibration ends at the block size of its round (7, 20, 10, ...)."""
    code = (
        "import json, sys\n"
        "given = None if sys.argv[3] == '-' else int(sys.argv[3])\n"
        "block = int(sys.argv[4])\n"
        "print(json.dumps({'lib': sys.argv[1], 'case': sys.argv[2], 'status': 'ok', 'value': 1.0,"
        " 'unit': 's', 'times': [1.0], 'extra': {'block': block, 'blocks': 3, 'given': given}}))\n"
    )
    return [python, "-c", code, lib, case, "-" if start_block is None else str(start_block)]


def test_runner_starts_each_calibration_from_the_largest_block_so_far():
    sizes = iter([7, 20, 10, 10, 5])

    def command(*args, **kw):
        return _block_echo_command(*args, **kw) + [str(next(sizes))]

    measure = runner.subprocess_measure(sys.executable, 1, False, 60, command=command)
    assert measure("torch", "mazur", 0)["extra"]["given"] is None  # round 1 starts from 1
    assert measure("torch", "mazur", 1)["extra"]["given"] == 7  # then from round 1's size
    assert measure("torch", "mazur", 2)["extra"]["given"] == 20  # a larger size raises the start
    assert measure("torch", "mazur", 3)["extra"]["given"] == 20  # a smaller one never lowers it
    assert measure("deltaprop", "mazur", 0)["extra"]["given"] is None  # per library and case


def test_worker_command_line_takes_block_options(capsys):
    assert worker.main(["numpy", "mazur", "--warmup", "0", "--block", "2", "--blocks", "3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["status"] == "ok" and len(res["times"]) == 3 and res["extra"]["block"] == 2
    assert worker.main(["numpy", "mazur", "--warmup", "0", "--start-block", "3", "--blocks", "1",
                        "--min-block-time", "1e-9"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["extra"]["calibrated"] is True and res["extra"]["block"] >= 3
    with pytest.raises(SystemExit):
        worker.main(["numpy", "mazur", "--block", "0"])


def test_block_timing_in_the_notes():
    item = {"status": "ok", "min": 1.0, "max": 1.1, "extra": {"warmup": 20, "block": 2000, "blocks": 3}}
    assert runner._notes("mazur", "numpy", item, None) == "3 x 2000 it"


def test_block_sizes_that_differ_between_rounds_show_as_a_range():
    runs = [{"extra": {"block": b, "blocks": 3}} for b in (2, 5, 5)]
    ex = runner._merge_extra(runs)
    assert ex["block_range"] == [2, 5]
    item = {"status": "ok", "min": 1.0, "max": 1.1, "extra": ex}
    assert runner._notes("cnn", "numpy", item, None) == "3 x 2-5 it"
