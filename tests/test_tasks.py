"""The task generators (`lstm_jax/training/tasks/`): layouts recomputed independently,
metrics on hand-made outputs, determinism, and the error messages."""

from __future__ import annotations

import collections
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax.training import tasks
from lstm_jax.training.tasks import (
    PASCANU_TEMPORAL_ORDER_SYMBOLS,
    REBER_SYMBOLS,
    TEMPORAL_ORDER_SYMBOLS,
    AddingProblem,
    CharLM,
    ContinualEmbeddedReber,
    Copy,
    EmbeddedReber,
    ModularArithmetic,
    MultiplicationProblem,
    ParityCheck,
    PascanuTemporalOrder,
    TemporalOrder,
    make_task,
    reber,
    reber_valid,
)
from lstm_jax.training.tasks.formal import arithmetic_value

TEXT = "The quick brown fox — jumps over the lazy dog; naïve café, 日本語!\n" * 20


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def small_tasks(text_file: str) -> list:
    return [
        AddingProblem(length=30),
        AddingProblem(length=30, variant="pascanu"),
        MultiplicationProblem(length=30),
        TemporalOrder(min_length=30, max_length=33),
        TemporalOrder(symbols=3, min_length=30, max_length=33),
        PascanuTemporalOrder(length=30),
        EmbeddedReber(),
        EmbeddedReber(train_size=None),
        ContinualEmbeddedReber(chunk_length=20, external_reset=True, test_symbols=50),
        Copy(num_symbols=4, copy_length=3, delay=5),
        CharLM(text_file, length=12),
        ParityCheck(min_length=2, max_length=6, test_min_length=7, test_max_length=12),
        ModularArithmetic(modulus=3, max_length=9, test_min_length=10, test_max_length=15),
    ]


def symbols(inputs: np.ndarray, alphabet: str) -> str:
    """One column's one-hot inputs back to text; '.' for an all-zero (padding) step."""
    return "".join(alphabet[row.argmax()] if row.any() else "." for row in inputs)


# --- the protocol ----------------------------------------------------------------------------


def test_every_task_fits_the_protocol(text_file):
    for task in small_tasks(text_file):
        assert tasks.TASKS[task.name] is type(task)
        assert task.loss in ("mse", "softmax", "sigmoid")
        assert isinstance(task.stateful, bool)
        for batch in (task.batch(3, 1, 5), task.test_set(3, 4)):
            steps, size, inputs = batch.inputs.shape
            assert inputs == task.input_size and batch.inputs.dtype == np.float32
            assert batch.mask.shape == (steps, size) and batch.mask.dtype == np.float32
            assert batch.lengths.shape == (size,) and batch.lengths.dtype == np.int32
            if task.loss == "softmax":
                assert batch.targets.shape == (steps, size) and batch.targets.dtype == np.int32
                assert batch.targets.max() < task.output_size
            else:
                assert batch.targets.shape == (steps, size, task.output_size)
                assert batch.targets.dtype == np.float32
            # nothing past a sequence's length
            past = np.arange(steps)[:, None] >= batch.lengths[None, :]
            assert not batch.inputs[past].any() and not batch.mask[past].any()
            assert batch.resets is None or batch.resets.shape == (steps, size)


def test_batches_are_deterministic_in_seed_and_step(text_file):
    for task in small_tasks(text_file):
        a, b = task.batch(7, 3, 6), task.batch(7, 3, 6)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
        other_step, other_seed = task.batch(7, 4, 6), task.batch(8, 3, 6)
        test = task.test_set(7, 6)
        for other in (other_step, other_seed):
            assert a.inputs.shape != other.inputs.shape or not np.array_equal(
                a.inputs, other.inputs
            )
        np.testing.assert_array_equal(test.inputs, task.test_set(7, 6).inputs)
        if task.name != "char_lm":  # char_lm tests on the held-out text, not a draw
            assert test.inputs.shape != a.inputs.shape or not np.array_equal(test.inputs, a.inputs)


# --- adding and multiplication ---------------------------------------------------------------


def test_adding_1997_layout_and_target():
    T = 40
    batch = AddingProblem(length=T).batch(0, 0, 500)
    values, markers = batch.inputs[..., 0], batch.inputs[..., 1]
    assert batch.inputs.shape[0] == T + T // 10
    assert set(batch.lengths) == set(range(T, T + T // 10 + 1))
    first_marked = 0
    for b, n in enumerate(batch.lengths):
        marked = np.flatnonzero(markers[:n, b] == 1)
        assert len(marked) == 2  # exactly two, distinct
        assert marked.min() < 10 and marked.max() < T // 2
        ends = [t for t in (0, n - 1) if t not in marked]
        assert np.all(markers[ends, b] == -1)
        others = np.setdiff1d(np.arange(n), np.concatenate([marked, ends]))
        assert np.all(markers[others, b] == 0)
        assert np.all(np.abs(values[:n, b]) <= 1)
        if 0 in marked:
            first_marked += 1
            assert values[0, b] == 0  # "X1 is set to zero"
        assert batch.mask[:, b].tolist() == [float(t == n - 1) for t in range(len(values))]
        expected = 0.5 + values[marked, b].sum() / 4
        assert batch.targets[n - 1, b, 0] == pytest.approx(expected, abs=1e-6)
        assert np.count_nonzero(batch.targets[:, b, 0]) <= 1
    assert 20 < first_marked < 100  # the first pair is marked about 1 time in 10


def test_adding_pascanu_layout_and_target():
    T = 50
    batch = AddingProblem(length=T, variant="pascanu").batch(1, 0, 300)
    values, markers = batch.inputs[..., 0], batch.inputs[..., 1]
    assert set(batch.lengths) == set(range(T, T + T // 10))
    for b, n in enumerate(batch.lengths):
        marked = np.flatnonzero(markers[:, b])
        assert np.all(markers[marked, b] == 1) and len(marked) == 2
        assert marked[0] < n // 10 <= marked[1] < n // 10 + 4 * n // 10
        assert np.all((values[:n, b] >= 0) & (values[:n, b] <= 1))
        assert batch.mask[n - 1, b] == 1 and batch.mask[:, b].sum() == 1
        assert batch.targets[n - 1, b, 0] == pytest.approx(values[marked, b].mean(), abs=1e-6)


def test_multiplication_layout_and_target():
    batch = MultiplicationProblem(length=30).batch(2, 5, 400)
    values, markers = batch.inputs[..., 0], batch.inputs[..., 1]
    assert values.min() >= 0
    for b, n in enumerate(batch.lengths):
        marked = np.flatnonzero(markers[:n, b] == 1)
        assert len(marked) == 2
        if 0 in marked:
            assert values[0, b] == 1.0  # the neutral element
        expected = values[marked[0], b] * values[marked[1], b]
        assert batch.targets[n - 1, b, 0] == pytest.approx(expected, abs=1e-6)


def test_regression_metrics_and_the_1997_criterion():
    task = AddingProblem(length=20)
    batch = task.test_set(0, 2560)
    perfect = batch.targets.copy()
    metrics = task.metrics(perfect, batch)
    assert metrics == {"correct_fraction": 1.0, "wrong": 0.0, "mse": 0.0, "sequences": 2560.0}
    assert task.solved(metrics)
    last = batch.lengths - 1
    outputs = perfect.copy()
    outputs[last[0], 0, 0] += 0.041  # just outside the tolerance
    outputs[last[1], 1, 0] -= 0.039  # just inside
    outputs[0, 2, 0] = 5.0  # unmasked steps are ignored
    metrics = task.metrics(outputs, batch)
    assert metrics["wrong"] == 1 and metrics["correct_fraction"] == 1 - 1 / 2560
    assert task.solved(metrics)  # 1 wrong in 2,560 is allowed
    outputs[last[3], 3, 0] += 0.5
    assert not task.solved(task.metrics(outputs, batch))
    small = task.test_set(0, 100)
    outputs = small.targets.copy()
    outputs[small.lengths[0] - 1, 0, 0] += 0.1
    assert not task.solved(task.metrics(outputs, small))  # 1 in 100 is too many


# --- temporal order --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_temporal_order_layout_and_class(n):
    task = TemporalOrder(symbols=n)
    batch = task.batch(0, 0, 300)
    assert task.ranges == {2: ((10, 20), (50, 60)), 3: ((10, 20), (33, 43), (66, 76))}[n]
    assert set(batch.lengths) <= set(range(100, 111)) and batch.inputs.shape[0] == 110
    classes = set()
    for b, length in enumerate(batch.lengths):
        text = symbols(batch.inputs[:, b], TEMPORAL_ORDER_SYMBOLS)
        assert len(text.rstrip(".")) == length and set(text[length:]) <= {"."}
        assert text[0] == "E" and text[length - 1] == "B"
        relevant = [t for t, c in enumerate(text) if c in "XY"]
        assert len(relevant) == n
        for t, (lo, hi) in zip(relevant, task.ranges, strict=True):
            assert lo <= t <= hi
        assert set(text[1 : length - 1]) - set("XY") <= set("abcd")
        order = "".join(text[t] for t in relevant)
        expected = int(order.replace("X", "0").replace("Y", "1"), 2)
        assert batch.targets[length - 1, b] == expected
        assert batch.mask[:, b].sum() == 1 and batch.mask[length - 1, b] == 1
        classes.add(expected)
    assert classes == set(range(2**n))


def test_temporal_order_positions_scale_or_are_explicit():
    short = TemporalOrder(symbols=3, min_length=20, max_length=22)
    assert short.ranges == ((2, 4), (6, 8), (13, 15))
    explicit = TemporalOrder(min_length=12, max_length=12, positions=[[1, 2], [5, 9]])
    assert explicit.ranges == ((1, 2), (5, 9))
    batch = explicit.batch(0, 0, 50)
    text = symbols(batch.inputs[:, 0], TEMPORAL_ORDER_SYMBOLS)
    assert len(text) == 12 and text[0] == "E" and text[-1] == "B"


def test_pascanu_temporal_order_layout_class_and_criterion():
    """Their `TempOrderTask`: 6 symbols, A/B at [L/10, 2L/10) and [5L/10, 6L/10), distractors
    c-f elsewhere, class v0 + 2 v1 at the last step; solved under 1 % argmax errors."""
    task = PascanuTemporalOrder(length=50)
    batch = task.batch(0, 0, 400)
    assert batch.inputs.shape == (50, 400, 6) and set(batch.lengths) == {50}
    classes = collections.Counter()
    for b in range(400):
        text = symbols(batch.inputs[:, b], PASCANU_TEMPORAL_ORDER_SYMBOLS)
        relevant = [t for t, c in enumerate(text) if c in "AB"]
        assert len(text) == 50 and len(relevant) == 2
        assert 5 <= relevant[0] < 10 and 25 <= relevant[1] < 30
        assert set(text) - set("AB") <= set("cdef")
        expected = "AB".index(text[relevant[0]]) + 2 * "AB".index(text[relevant[1]])
        assert batch.targets[49, b] == expected and batch.mask[:, b].tolist() == [0] * 49 + [1]
        classes[expected] += 1
    assert set(classes) == {0, 1, 2, 3}
    test = task.test_set(0, 1000)
    logits = 5.0 * np.eye(4)[test.targets]
    logits[49, :9] = -logits[49, :9]  # 9 of 1,000 wrong: under 1 %
    metrics = task.metrics(logits, test)
    assert metrics["wrong"] == 9 and metrics["accuracy"] == pytest.approx(0.991)
    assert task.solved(metrics)
    logits[49, 9] = -logits[49, 9]  # 10 of 1,000: not under 1 %
    assert not task.solved(task.metrics(logits, test))


def test_adding_pascanu_scores_as_their_code():
    """Wrong when the squared error exceeds .04 (|error| >= 0.2); solved under 1 % wrong."""
    task = AddingProblem(length=30, variant="pascanu")
    test = task.test_set(0, 1000)
    outputs = test.targets.copy()
    last = test.lengths - 1
    outputs[last[:9], np.arange(9), 0] += 0.21
    outputs[last[9], 9, 0] += 0.19  # within their tolerance, wrong by the 1997 one
    metrics = task.metrics(outputs, test)
    assert metrics["wrong"] == 9 and task.solved(metrics)
    assert AddingProblem(length=30).metrics(outputs, test)["wrong"] == 10
    outputs[last[10], 10, 0] -= 0.3
    assert not task.solved(task.metrics(outputs, test))


def test_temporal_order_metrics():
    task = TemporalOrder(min_length=30, max_length=30)
    batch = task.test_set(0, 2560)
    confident = 10.0 * np.eye(4)[batch.targets]
    metrics = task.metrics(confident, batch)
    assert metrics["accuracy"] == 1.0 and metrics["wrong"] == 0 and metrics["wrong_1997"] == 0
    assert task.solved(metrics)
    # right argmax, but target probability 0.6 <= 0.7: wrong by the 1997 criterion only
    unsure = confident.copy()
    t = batch.lengths[0] - 1
    unsure[t, 0] = np.log(np.where(np.arange(4) == batch.targets[t, 0], 0.6, 0.4 / 3))
    metrics = task.metrics(unsure, batch)
    assert metrics["wrong"] == 0 and metrics["wrong_1997"] == 1 and task.solved(metrics)
    unsure[t, 1] = -unsure[t, 1]
    metrics = task.metrics(unsure, batch)
    assert metrics["wrong"] == 1 and metrics["wrong_1997"] == 2 and not task.solved(metrics)


# --- embedded Reber --------------------------------------------------------------------------


def batch_strings(batch) -> list[str]:
    return [
        symbols(batch.inputs[:n, b], REBER_SYMBOLS) for b, n in enumerate(batch.lengths.tolist())
    ]


def test_reber_checker_on_hand_written_strings():
    assert reber_valid("BTSSXXTVVE", embedded=False)
    assert reber_valid("BPVVE", embedded=False)
    assert reber_valid("BTXXVPSE", embedded=False)
    assert reber_valid("BPTVPXTTVVE", embedded=False)
    assert reber_valid("BTBTSSXXTVVETE", embedded=True)
    assert reber_valid("BPBPVVEPE", embedded=True)
    assert not reber_valid("BTBTSSXXTVVEPE", embedded=True)  # outer T ... P
    assert not reber_valid("BTSSXXTVVE", embedded=True)
    assert not reber_valid("BTBTSSXXTVVETE", embedded=False)
    assert not reber_valid("BTSSXXTVE", embedded=False)  # node 5 cannot end with one V
    assert not reber_valid("BPVPE", embedded=False)
    assert not reber_valid("BTXSE ", embedded=False)


def test_reber_strings_are_valid_and_targets_hold_the_next_symbol():
    task = EmbeddedReber(train_size=None)
    batch = task.batch(0, 0, 400)
    strings = batch_strings(batch)
    assert all(reber_valid(s, embedded=True) for s in strings)
    assert all(reber_valid(s[2:-2], embedded=False) for s in strings)
    assert {s[1] for s in strings} == {"T", "P"} and {s[3] for s in strings} == {"T", "P"}
    for b, text in enumerate(strings):
        n = len(text)
        assert batch.mask[:, b].tolist() == [float(t < n - 1) for t in range(len(batch.mask))]
        for t in range(n - 1):
            assert batch.targets[t, b, REBER_SYMBOLS.index(text[t + 1])] == 1
        assert not batch.targets[n - 1 :, b].any()
        # the long-lag step: after the inner E only the outer symbol can follow
        assert batch.targets[n - 3, b].tolist() == [float(c == text[1]) for c in REBER_SYMBOLS]


def test_reber_target_sets_equal_the_observed_continuations():
    """Independent of the table: for every prefix seen often, the target set is exactly the set
    of next symbols that occur after it (each branch has probability 1/2, so 40 samples miss a
    branch with probability < 2^-39)."""
    batch = EmbeddedReber(train_size=None).test_set(0, 3000)
    following, targets = collections.defaultdict(list), {}
    for b, text in enumerate(batch_strings(batch)):
        for t in range(len(text) - 1):
            following[text[: t + 1]].append(text[t + 1])
            targets[text[: t + 1]] = {REBER_SYMBOLS[i] for i in np.flatnonzero(batch.targets[t, b])}
    frequent = [prefix for prefix, seen in following.items() if len(seen) >= 40]
    assert len(frequent) > 30
    for prefix in frequent:
        assert set(following[prefix]) == targets[prefix], prefix


def test_reber_training_set_is_fixed_and_test_set_has_size_strings():
    task = EmbeddedReber(train_size=16)
    pool = set(batch_strings(task.batch(0, 0, 200))) | set(batch_strings(task.batch(0, 1, 200)))
    assert len(pool) <= 16
    assert len(batch_strings(task.test_set(0, 256))) == 256


def test_reber_metrics():
    task = EmbeddedReber()
    batch = task.test_set(1, 20)
    logits = np.where(batch.targets > 0.5, 3.0, -3.0)
    metrics = task.metrics(logits, batch)
    assert metrics == {"strings_correct": 1.0, "symbols_correct": 1.0} and task.solved(metrics)
    logits[4, 7, 2] = -logits[4, 7, 2]
    logits[batch.lengths[3] - 1, 3] = 9.0  # the final E has no target: ignored
    metrics = task.metrics(logits, batch)
    assert metrics["strings_correct"] == 19 / 20 and not task.solved(metrics)
    assert metrics["symbols_correct"] == 1 - 1 / batch.mask.sum()


# --- continual embedded Reber ----------------------------------------------------------------


def test_continual_chunks_continue_one_stream():
    chunked = ContinualEmbeddedReber(chunk_length=25, external_reset=True)
    whole = ContinualEmbeddedReber(chunk_length=100, external_reset=True)
    parts = [chunked.batch(5, k, 3) for k in range(4)]
    reber._TRAIN_STREAMS.clear()  # the long chunk is generated in one go
    one = whole.batch(5, 0, 3)
    for field in ("inputs", "targets", "mask", "resets"):
        joined = np.concatenate([getattr(p, field) for p in parts], axis=0)
        np.testing.assert_array_equal(joined, getattr(one, field))
    # random access, backwards and forwards, gives the same chunks
    np.testing.assert_array_equal(chunked.batch(5, 1, 3).inputs, parts[1].inputs)
    np.testing.assert_array_equal(chunked.batch(5, 3, 3).targets, parts[3].targets)
    reber._TRAIN_STREAMS.clear()
    np.testing.assert_array_equal(chunked.batch(5, 2, 3).inputs, parts[2].inputs)
    # a wider batch has the same first streams
    np.testing.assert_array_equal(chunked.batch(5, 2, 5).inputs[:, :3], parts[2].inputs)


def test_continual_restart_every_starts_fresh_streams_from_a_zeroed_carry():
    """Every 3 chunks each training stream starts afresh (a new embedded Reber stream whose
    first symbol is B) and `resets` zeroes the carry there and nowhere else."""
    plain = ContinualEmbeddedReber(chunk_length=20)
    task = ContinualEmbeddedReber(chunk_length=20, restart_every=3)
    batches = [task.batch(1, k, 4) for k in range(7)]
    for k, batch in enumerate(batches):
        flags = batch.resets
        assert flags.shape == (20, 4) and flags.dtype == bool
        assert flags[0].tolist() == [k % 3 == 0] * 4 and not flags[1:].any()
        if k % 3 == 0:
            assert set(symbols(batch.inputs[0], REBER_SYMBOLS)) == {"B"}
    # the first segment is the plain stream; later segments are new streams, not its sequel
    for k in range(3):
        np.testing.assert_array_equal(batches[k].inputs, plain.batch(1, k, 4).inputs)
    assert not np.array_equal(batches[3].inputs, plain.batch(1, 3, 4).inputs)
    assert not np.array_equal(batches[3].inputs, batches[6].inputs)
    # with external resets the string starts already include each fresh stream's start
    both = ContinualEmbeddedReber(chunk_length=20, restart_every=3, external_reset=True)
    assert both.batch(1, 3, 4).resets[0].all() and both.batch(1, 4, 4).resets.sum() > 0
    with pytest.raises(ValueError, match="restart_every"):
        ContinualEmbeddedReber(restart_every=-1)


def test_continual_stream_is_embedded_reber_strings_with_resets_at_their_starts():
    task = ContinualEmbeddedReber(chunk_length=60, external_reset=True)
    batches = [task.batch(0, k, 2) for k in range(5)]
    for b in range(2):
        text = "".join(symbols(x.inputs[:, b], REBER_SYMBOLS) for x in batches)
        targets = np.concatenate([x.targets[:, b] for x in batches])
        starts = np.flatnonzero(np.concatenate([x.resets[:, b] for x in batches]))
        assert starts[0] == 0 and len(starts) > 10
        for i, j in itertools.pairwise(starts):
            assert reber_valid(text[i:j], embedded=True)
            assert targets[j - 1].tolist() == [float(c == "B") for c in REBER_SYMBOLS]
        for t in range(len(text) - 1):  # across chunk boundaries too
            assert targets[t, REBER_SYMBOLS.index(text[t + 1])] == 1
    assert ContinualEmbeddedReber().batch(0, 0, 2).resets is None
    assert np.all(batches[0].mask == 1) and np.all(batches[0].lengths == 60)


def test_continual_test_set_and_metrics():
    task = ContinualEmbeddedReber(test_symbols=300)
    test = task.test_set(0, 4)
    assert test.inputs.shape == (300, 4, 7)
    train = ContinualEmbeddedReber(chunk_length=300).batch(0, 0, 4)
    assert not np.array_equal(test.inputs, train.inputs)
    logits = np.where(test.targets > 0.5, 2.0, -2.0)
    metrics = task.metrics(logits, test)
    assert metrics == {
        "symbols_correct": 1.0,
        "streams_correct": 1.0,
        "longest_correct_run": 300.0,
        "symbols_before_first_error": 300.0,
    }
    assert task.solved(metrics)
    logits[100, 1] = -logits[100, 1]
    metrics = task.metrics(logits, test)
    assert metrics["streams_correct"] == 3 / 4 and not task.solved(metrics)
    assert metrics["longest_correct_run"] == 199  # steps 101..299 of stream 1
    assert metrics["symbols_before_first_error"] == (3 * 300 + 100) / 4
    assert metrics["symbols_correct"] == 1 - 1 / 1200


def test_continual_max_error_judges_each_output_by_its_distance_from_the_target():
    """`max_error = 0.7` (squared error below 0.49): outputs 0.35 on a possible successor and
    0.65 elsewhere are right, though the 0.5 threshold calls both wrong; 0.29 and 0.71 are wrong
    under both. Training streams end by the same rule (`step_correct` on JAX arrays)."""
    strict = ContinualEmbeddedReber(test_symbols=200, outputs="sigmoid")
    loose = ContinualEmbeddedReber(test_symbols=200, outputs="sigmoid", max_error=0.7)
    test = loose.test_set(0, 2)
    near = np.where(test.targets > 0.5, 0.35, 0.65)
    assert loose.solved(loose.metrics(near, test))
    assert strict.metrics(near, test)["symbols_correct"] == 0.0
    far = near.copy()
    far[50, 0] = np.where(test.targets[50, 0] > 0.5, 0.29, 0.71)
    metrics = loose.metrics(far, test)
    assert metrics["symbols_before_first_error"] == (50 + 200) / 2 and not loose.solved(metrics)
    step = jax.jit(loose.step_correct)(jnp.asarray(far[50]), jnp.asarray(test.targets[50]))
    assert step.tolist() == [False, True]
    # the default criterion is the 0.5 threshold, unchanged
    exact = np.where(test.targets > 0.5, 0.9, 0.1)
    assert strict.metrics(exact, test) == loose.metrics(exact, test)
    with pytest.raises(ValueError, match="outputs='sigmoid'"):
        ContinualEmbeddedReber(max_error=0.7)
    for bad in (0.0, 1, 1.5, "0.7", True, np.bool_(True)):
        with pytest.raises(ValueError, match="max_error"):
            ContinualEmbeddedReber(outputs="sigmoid", max_error=bad)
    assert ContinualEmbeddedReber(outputs="sigmoid", max_error=np.float32(0.7)).max_error > 0.69


# --- copy ------------------------------------------------------------------------------------


def test_copy_layout_and_metrics():
    task = Copy(num_symbols=5, copy_length=4, delay=6)
    batch = task.batch(0, 0, 50)
    codes = batch.inputs.argmax(-1)
    assert batch.inputs.shape == (14, 50, 7) and np.all(batch.inputs.sum(-1) == 1)
    blank, go = 5, 6
    assert np.all(codes[:4] < 5)
    assert np.all(codes[4:9] == blank) and np.all(codes[9] == go) and np.all(codes[10:] == blank)
    np.testing.assert_array_equal(batch.targets[10:], codes[:4])
    assert np.all(batch.mask[10:] == 1) and not batch.mask[:10].any()
    logits = 4.0 * np.eye(5)[batch.targets]
    metrics = task.metrics(logits, batch)
    assert metrics == {"symbol_accuracy": 1.0, "sequences_correct": 1.0} and task.solved(metrics)
    logits[2] = 0.0  # outside the output window: ignored
    logits[12, 3] = np.roll(logits[12, 3], 1)
    metrics = task.metrics(logits, batch)
    assert metrics["sequences_correct"] == 49 / 50 and not task.solved(metrics)
    assert metrics["symbol_accuracy"] == 1 - 1 / 200


# --- character-level language model ----------------------------------------------------------


def test_char_lm_windows_vocabulary_and_split(text_file):
    task = CharLM(text_file, length=16)
    assert task.vocabulary == "".join(sorted(set(TEXT)))
    assert task.input_size == task.output_size == len(set(TEXT))
    assert task.decode(task.encode(TEXT)) == TEXT
    split = len(TEXT) - round(0.1 * len(TEXT))
    train, test = TEXT[:split], TEXT[split:]
    batch = task.batch(0, 0, 8)
    for b in range(8):
        inputs = task.decode(batch.inputs[:, b].argmax(-1))
        targets = task.decode(batch.targets[:, b])
        assert inputs[1:] == targets[:-1]  # targets are the inputs shifted by one
        assert inputs + targets[-1] in train
    test_batch = task.test_set(0, 1000)
    assert test_batch.inputs.shape[1] == (len(test) - 1) // 16
    inputs = "".join(task.decode(test_batch.inputs[:, b].argmax(-1)) for b in range(3))
    assert inputs == test[:48]  # consecutive, non-overlapping windows
    assert task.test_set(0, 2).inputs.shape[1] == 2


def test_char_lm_metrics(text_file):
    task = CharLM(text_file, length=10)
    batch = task.test_set(0, 5)
    uniform = np.zeros((*batch.targets.shape, task.output_size))
    metrics = task.metrics(uniform, batch)
    assert metrics["bits_per_char"] == pytest.approx(math.log2(task.output_size))
    assert not task.solved(metrics)
    confident = 50.0 * np.eye(task.output_size)[batch.targets]
    metrics = task.metrics(confident, batch)
    assert metrics["bits_per_char"] == pytest.approx(0.0, abs=1e-12) and metrics["accuracy"] == 1
    huge = 1e4 * np.eye(task.output_size)[batch.targets]  # stable log-softmax: no overflow
    assert np.isfinite(task.metrics(huge, batch)["bits_per_char"])
    assert CharLM(text_file, length=10, target_bpc=1.0).solved(metrics)


def test_char_lm_errors(tmp_path, text_file):
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        CharLM(missing)
    with pytest.raises(ValueError, match="too short for length=1000"):
        CharLM(text_file, length=1000)
    with pytest.raises(ValueError, match="test_fraction"):
        CharLM(text_file, test_fraction=1.5)
    with pytest.raises(TypeError, match=r"requires option.*path"):
        make_task("char_lm")


# --- errors ----------------------------------------------------------------------------------


# --- formal languages ------------------------------------------------------------------------


def test_parity_strings_classes_and_lengths():
    task = ParityCheck()
    for batch, (low, high) in (
        (task.batch(0, 0, 200), (3, 40)),
        (task.test_set(0, 300), (41, 256)),
    ):
        assert batch.inputs.shape[0] == high
        assert batch.lengths.min() >= low and batch.lengths.max() <= high
        assert batch.lengths.min() < low + 10 and batch.lengths.max() > high - 10
        for j, length in enumerate(batch.lengths):
            ones = int(batch.inputs[:length, j, 1].sum())
            assert batch.mask[:, j].nonzero()[0].tolist() == [length - 1]
            assert batch.targets[length - 1, j] == ones % 2
    assert set(batch.targets[batch.mask > 0]) == {0, 1}


def test_modular_arithmetic_matches_python_evaluation():
    """Each string, decoded and evaluated by Python (usual precedence), gives the class;
    hand-checked examples from Delétang et al."""
    task = ModularArithmetic()
    batch = task.batch(1, 2, 100)
    alphabet = "01234+-*"
    assert set(batch.lengths % 2) == {1}
    for j, length in enumerate(batch.lengths):
        text = symbols(batch.inputs[:length, j], alphabet)
        assert batch.targets[length - 1, j] == eval(text) % 5
    numbers = np.array([[1, 1, 0], [2, 1, 1], [3, 1, 4], [0, 0, 3], [0, 0, 2]])
    ops = np.array([[0, 1, 2], [2, 1, 0], [0, 0, 2], [0, 0, 1]])  # "+-*" indices
    got = arithmetic_value(numbers, ops, np.array([2, 2, 4]), 5)
    assert got.tolist() == [(1 + 2 * 3) % 5, (1 - 1 - 1) % 5, (0 * 1 + 4 * 3 - 2) % 5]


def test_formal_language_metrics():
    task = ModularArithmetic()
    batch = task.test_set(0, 50)
    perfect = np.eye(5)[batch.targets] * 10
    assert task.metrics(perfect, batch) == {"accuracy": 1.0, "scaled_accuracy": 1.0}
    assert task.solved(task.metrics(perfect, batch))
    constant = np.zeros_like(perfect)  # argmax 0 everywhere
    acc = np.mean(batch.targets[batch.mask > 0] == 0)
    got = task.metrics(constant, batch)
    assert got["accuracy"] == acc and np.isclose(got["scaled_accuracy"], (acc - 0.2) / 0.8)


def test_make_task_names_and_options():
    assert isinstance(make_task("adding", length=50), AddingProblem)
    with pytest.raises(ValueError, match="unknown task 'add'") as error:
        make_task("add")
    for name in tasks.TASKS:
        assert name in str(error.value)
    with pytest.raises(TypeError, match=r"unknown option.*lenght.*valid options: length, variant"):
        make_task("adding", lenght=50)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AddingProblem(length=3), "length must be >= 20, got 3"),
        (lambda: AddingProblem(length=5, variant="pascanu"), "length must be >= 10, got 5"),
        (lambda: AddingProblem(variant="2013"), "variant must be '1997' or 'pascanu'"),
        (lambda: AddingProblem(length=50.0), "length must be an integer"),
        (lambda: MultiplicationProblem(length=10), "length must be >= 20"),
        (lambda: TemporalOrder(symbols=4), "symbols must be 2"),
        (lambda: PascanuTemporalOrder(length=9), "length must be >= 10, got 9"),
        (lambda: TemporalOrder(min_length=100, max_length=90), "max_length must be >= 100"),
        (lambda: TemporalOrder(positions=((10, 60), (50, 60))), "non-overlapping"),
        (lambda: TemporalOrder(positions=((10, 20),)), "must have 2 ranges"),
        (lambda: TemporalOrder(min_length=50, positions=((1, 2), (3, 49))), "end before"),
        (lambda: TemporalOrder(min_length=5, max_length=5), "scaled paper positions"),
        (lambda: TemporalOrder(positions="abc"), "integer pairs"),
        (lambda: EmbeddedReber(train_size=0), "train_size must be >= 1"),
        (lambda: ContinualEmbeddedReber(chunk_length=0), "chunk_length must be >= 1"),
        (lambda: ContinualEmbeddedReber(external_reset="yes"), "external_reset must be a bool"),
        (lambda: Copy(delay=0), "delay must be >= 1, got 0"),
        (lambda: Copy(num_symbols=1), "num_symbols must be >= 2"),
        (lambda: ParityCheck(min_length=9, max_length=8), "max_length must be >= min_length"),
        (lambda: ParityCheck(test_max_length=40), "test_max_length must be >= test_min_length"),
        (lambda: ParityCheck(min_length=0), "min_length must be >= 1, got 0"),
        (lambda: ModularArithmetic(modulus=1), "modulus must be >= 2, got 1"),
        (lambda: AddingProblem().batch(0, -1, 4), "step must be >= 0"),
        (lambda: AddingProblem().batch(-1, 0, 4), "seed must be >= 0"),
        (lambda: Copy().batch(0, 0, 0), "batch_size must be >= 1"),
        (lambda: EmbeddedReber().test_set(0, 0), "size must be >= 1"),
        (lambda: ContinualEmbeddedReber().batch(0, 0, 0), "batch_size must be >= 1"),
    ],
)
def test_invalid_options_and_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
