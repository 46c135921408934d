"""Bad inputs raise the documented error, naming the argument and the values, before tracing."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstm_jax
import lstm_jax.driver.scan as scan_module
from lstm_jax.nn import linen as lj

I, H, B, T = 3, 4, 2, 5


class Traced(Exception):
    """Raised in place of the scan: an input error surfaced only after tracing began."""


@pytest.fixture(autouse=True)
def no_scan(monkeypatch):
    """Every test here must fail in validation, before `unroll` reaches its `lax.scan`."""

    def forbidden(*args, **kwargs):
        raise Traced("unroll reached the scan: the bad input was not caught by validation")

    monkeypatch.setattr(scan_module, "scan_steps", forbidden)
    monkeypatch.setattr(scan_module.fused, "fused_unroll", forbidden)  # the LSTM's default path


@pytest.fixture
def real_scan(monkeypatch):
    monkeypatch.undo()


def _lstm():
    cell = lstm_jax.lstm()
    return cell, cell.init(jax.random.key(0), I, H)


def _xs(shape=(T, B, I), dtype=jnp.float32):
    return jnp.ones(shape, dtype)


def test_valid_inputs_run(real_scan):
    """Control: the inputs the error tests perturb are accepted when correct."""
    cell, params = _lstm()
    carry, ys = lstm_jax.unroll(
        cell,
        params,
        _xs(),
        cell.initial_carry((B,), H),
        gradient="truncated",
        window=2,
        lengths=jnp.array([T, 0]),
    )
    assert ys.shape == (T, B, H) and carry.h.shape == (B, H)
    _, ys = lstm_jax.unroll(cell, params, _xs((T, I)), lengths=3)
    assert ys.shape == (T, H)


def test_control_reaches_scan():
    """The sentinel works: a valid call gets as far as the scan."""
    cell, params = _lstm()
    with pytest.raises(Traced):
        lstm_jax.unroll(cell, params, _xs())


# xs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "time_major", "received"),
    [
        ((T,), True, "(5,)"),
        ((1, T, B, I), True, "(1, 5, 2, 3)"),
        ((1, B, T, I), False, "(1, 2, 5, 3)"),
    ],
)
def test_xs_wrong_rank(shape, time_major, received):
    cell, params = _lstm()
    layout = re.escape("[T, B, I]" if time_major else "[B, T, I]")
    with pytest.raises(
        ValueError, match=rf"xs must have rank 2 .* or 3 \({layout}\).*{re.escape(received)}"
    ):
        lstm_jax.unroll(cell, params, _xs(shape), time_major=time_major)


@pytest.mark.parametrize("shape", [(T, B, 7), (T, 7), (T, B, 1)])
def test_xs_wrong_input_size(shape):
    cell, params = _lstm()
    pattern = rf"xs has input size {shape[-1]} .*{re.escape(str(shape))}.*input_size=3"
    with pytest.raises(ValueError, match=pattern):
        lstm_jax.unroll(cell, params, _xs(shape))


@pytest.mark.parametrize("time_major", [True, False])
def test_xs_without_time_steps(time_major):
    cell, params = _lstm()
    shape = (0, B, I) if time_major else (B, 0, I)
    with pytest.raises(ValueError, match=rf"xs has no time steps .*{re.escape(str(shape))}"):
        lstm_jax.unroll(cell, params, _xs(shape), time_major=time_major)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, jnp.complex64])
def test_xs_non_float_dtype(dtype):
    cell, params = _lstm()
    name = jnp.dtype(dtype).name
    with pytest.raises(TypeError, match=rf"xs must have a floating-point dtype .*got {name}"):
        lstm_jax.unroll(cell, params, _xs(dtype=dtype))


@pytest.mark.parametrize(
    ("xs", "kind"), [([[1.0, 2.0, 3.0]] * T, "list"), (1.0, "float"), ("abc", "str")]
)
def test_xs_not_an_array(xs, kind):
    cell, params = _lstm()
    with pytest.raises(TypeError, match=rf"xs must be a floating-point array, got {kind}"):
        lstm_jax.unroll(cell, params, xs)


# params --------------------------------------------------------------------------------------


def test_params_not_cell_params():
    cell, _ = _lstm()
    with pytest.raises(
        TypeError, match=r"params must be the parameters of an lstm_jax cell.*tuple"
    ):
        lstm_jax.unroll(cell, (1.0, 2.0), _xs())


def test_params_kernels_disagree():
    cell, params = _lstm()
    bad = params._replace(w=jnp.ones((I, 3 * H)))
    with pytest.raises(
        ValueError, match=r"params\.w has shape \(3, 12\) but expected \(3, 16\) for input_size=3"
    ):
        lstm_jax.unroll(cell, bad, _xs())


def test_params_wrong_recurrent_kernel_is_named():
    """`H` is read from `r`, so a wrong `r` once made `w` look wrong; the error names `r`."""
    cell, params = _lstm()
    bad = params._replace(r=jnp.ones((H + 1, 4 * H)))
    with pytest.raises(ValueError, match=r"params\.r has shape \(5, 16\) but expected \(4, 16\)"):
        lstm_jax.unroll(cell, bad, _xs())


@pytest.mark.parametrize(
    "cell",
    [
        lstm_jax.lstm(),
        lstm_jax.gru(),
        lstm_jax.rnn(),
        lstm_jax.slstm(),
        lstm_jax.mlstm(),
        lstm_jax.mingru(),
    ],
    ids=["lstm", "gru", "rnn", "slstm", "mlstm", "mingru"],
)
@pytest.mark.parametrize(
    ("sizes", "name"), [((8, 0), "hidden_size"), ((0, 4), "input_size"), ((8, 2.5), "hidden_size")]
)
def test_init_sizes_must_be_positive_ints(cell, sizes, name):
    with pytest.raises(ValueError, match=rf"{name} must be a positive int, got"):
        cell.init(jax.random.key(0), *sizes)


def test_forward_mode_through_the_fused_path_says_use_scan(real_scan):
    cell, params = _lstm()
    with pytest.raises(TypeError, match=r"forward-mode autodiff .* pass impl='scan'") as err:
        jax.jacfwd(lambda xs: lstm_jax.unroll(cell, params, xs)[1])(_xs())
    assert "hessian" not in str(err.value)
    with pytest.raises(TypeError, match=r"forward-mode autodiff .* pass impl='scan'"):
        jax.jit(jax.jacfwd(lambda xs: lstm_jax.unroll(cell, params, xs)[1]))(_xs())
    jax.jacfwd(lambda xs: lstm_jax.unroll(cell, params, xs, impl="scan")[1])(_xs())
    # jax.hessian is jacfwd of jacrev: forward mode over the fused backward pass, which is
    # plain JAX, so the default path serves it (the message does not name it)
    x = _xs()[:2, :1]  # [2, 1, I]: a 2·I-by-2·I Hessian
    loss = lambda path: lambda x: jnp.sum(lstm_jax.unroll(cell, params, x, impl=path)[1] ** 2)  # noqa: E731
    np.testing.assert_allclose(
        jax.hessian(loss("auto"))(x), jax.hessian(loss("scan"))(x), rtol=1e-4, atol=1e-6
    )


def test_params_int_leaf():
    cell, params = _lstm()
    bad = params._replace(b=params.b.astype(jnp.int32))
    with pytest.raises(TypeError, match=r"params\.b must have a floating-point dtype.*int32"):
        lstm_jax.unroll(cell, bad, _xs())


# carry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell_fn", "carry", "pattern"),
    [
        (
            lstm_jax.lstm,
            lstm_jax.LSTMCarry(jnp.zeros((3, H)), jnp.zeros((3, H))),
            r"carry\.h has shape \(3, 4\) but expected \(2, 4\) for xs batch shape \(2,\)",
        ),
        (
            lstm_jax.lstm,
            lstm_jax.LSTMCarry(jnp.zeros((B, H)), jnp.zeros((B, H + 1))),
            r"carry\.c has shape \(2, 5\) but expected \(2, 4\).*hidden_size 4",
        ),
        (
            lstm_jax.rnn,
            jnp.zeros((H,)),
            r"carry has shape \(4,\) but expected \(2, 4\)",
        ),
        (
            lstm_jax.gru,
            jnp.zeros((B + 1, H)),
            r"carry has shape \(3, 4\) but expected \(2, 4\)",
        ),
    ],
)
def test_carry_wrong_shape(cell_fn, carry, pattern):
    cell = cell_fn()
    params = cell.init(jax.random.key(0), I, H)
    with pytest.raises(ValueError, match=pattern):
        lstm_jax.unroll(cell, params, _xs(), carry)


@pytest.mark.parametrize(
    ("cell_fn", "carry", "expected"),
    [
        (lstm_jax.lstm, jnp.zeros((B, H)), "LSTMCarry"),
        (lstm_jax.lstm, (jnp.zeros((B, H)), jnp.zeros((B, H))), "LSTMCarry"),
        (
            lambda: lstm_jax.lstm("FGR"),
            lstm_jax.LSTMCarry(jnp.zeros((B, H)), jnp.zeros((B, H))),
            "LSTMCarry",
        ),
        (
            lstm_jax.gru,
            lstm_jax.LSTMCarry(jnp.zeros((B, H)), jnp.zeros((B, H))),
            r"PyTreeDef\(\*\)",
        ),
    ],
)
def test_carry_wrong_structure(cell_fn, carry, expected):
    cell = cell_fn()
    params = cell.init(jax.random.key(0), I, H)
    pattern = rf"carry has structure .* but this cell expects .*{expected}.*cell\.initial_carry"
    with pytest.raises(ValueError, match=pattern):
        lstm_jax.unroll(cell, params, _xs(), carry)


def test_carry_float64_under_float32_params():
    with jax.enable_x64(True):
        cell, params = _lstm()
        carry = cell.initial_carry((B,), H, jnp.float64)
        assert carry.h.dtype == jnp.float64 and params.w.dtype == jnp.float32
        with pytest.raises(
            TypeError, match=r"carry\.h has dtype float64 but the step computes in float32"
        ):
            lstm_jax.unroll(cell, params, _xs(), carry)


def test_carry_int_dtype():
    cell, params = _lstm()
    carry = lstm_jax.LSTMCarry(jnp.zeros((B, H)), jnp.zeros((B, H), jnp.int32))
    with pytest.raises(TypeError, match=r"carry\.c must have a floating-point dtype.*int32"):
        lstm_jax.unroll(cell, params, _xs(), carry)


# lengths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lengths", "received"),
    [(jnp.array([1, 2, 3]), "(3,)"), (jnp.array([[1, 2]]), "(1, 2)"), (jnp.array(2), "()")],
)
def test_lengths_wrong_shape(lengths, received):
    cell, params = _lstm()
    pattern = rf"lengths must have the batch shape of xs, \(2,\), got shape {re.escape(received)}"
    with pytest.raises(ValueError, match=pattern):
        lstm_jax.unroll(cell, params, _xs(), lengths=lengths)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bool_])
def test_lengths_not_integer(dtype):
    cell, params = _lstm()
    name = jnp.dtype(dtype).name
    with pytest.raises(TypeError, match=rf"lengths must be an integer array, got dtype {name}"):
        lstm_jax.unroll(cell, params, _xs(), lengths=jnp.array([1, 2], dtype))


@pytest.mark.parametrize(
    ("lengths", "received"), [([1, T + 1], "min 1 and max 6"), ([-1, 2], "min -1 and max 2")]
)
def test_lengths_out_of_range(lengths, received):
    cell, params = _lstm()
    with pytest.raises(ValueError, match=rf"lengths must lie in \[0, T=5\], got {received}"):
        lstm_jax.unroll(cell, params, _xs(), lengths=jnp.array(lengths))


def test_lengths_out_of_range_unbatched():
    cell, params = _lstm()
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=5\], got min 6"):
        lstm_jax.unroll(cell, params, _xs((T, I)), lengths=6)


def test_traced_lengths_out_of_range_are_clamped_as_documented(real_scan):
    """Under `jit` no value can be checked: lengths outside [0, T] act as clamped to [0, T]
    (the `lengths` docstring), gradient included. `window` with `reverse` counts a sequence's
    steps from its length, so unclamped lengths once moved the cuts."""
    cell, params = _lstm()
    xs = jax.random.normal(jax.random.key(1), (T, B, I))

    def loss(params, lengths):
        ys = lstm_jax.unroll(cell, params, xs, lengths=lengths, window=2, reverse=True)[1]
        return jnp.sum(jnp.sin(ys))

    traced = jax.jit(jax.value_and_grad(loss))(params, jnp.array([T + 3, -2]))
    clamped = jax.value_and_grad(loss)(params, jnp.array([T, 0]))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), traced, clamped
    )
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=5\]"):
        loss(params, jnp.array([T + 3, -2]))  # concrete: refused


def test_lengths_as_list_is_accepted_or_rejected_cleanly(real_scan):
    cell, params = _lstm()
    try:
        _, ys = lstm_jax.unroll(cell, params, _xs(), lengths=[T, 2])
    except TypeError as err:
        assert "lengths" in str(err)
    else:
        _, expected = lstm_jax.unroll(cell, params, _xs(), lengths=jnp.array([T, 2]))
        np.testing.assert_array_equal(ys, expected)


# window, gradient, the other unroll options --------------------------------------------------


@pytest.mark.parametrize(
    ("window", "shown"),
    [(0, "0"), (-1, "-1"), (1.5, "1.5"), (True, "True"), ("2", "'2'"), (np.int32(0), "0")],
)
def test_window_invalid(window, shown):
    cell, params = _lstm()
    pattern = (
        rf"window must be a positive int \(steps per window\) or None, got .*{re.escape(shown)}"
    )
    with pytest.raises(ValueError, match=pattern):
        lstm_jax.unroll(cell, params, _xs(), window=window)


@pytest.mark.parametrize("scan_unroll", [2.5, -1, 0, True, "2"])
@pytest.mark.parametrize("impl", ["scan", "auto"])
def test_scan_unroll_invalid(scan_unroll, impl):
    """JAX's own messages for 2.5 and -1 did not name `scan_unroll`; True meant "unroll fully"."""
    cell, params = _lstm()
    pattern = r"scan_unroll must be a positive int \(steps per scan iteration\), got " + re.escape(
        repr(scan_unroll)
    )
    with pytest.raises(ValueError, match=pattern):
        lstm_jax.unroll(cell, params, _xs(), scan_unroll=scan_unroll, impl=impl)


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [("time_major", "no", "str 'no'"), ("reverse", "yes", "str 'yes'"), ("remat", 1, "int 1")],
)
def test_bool_options_must_be_bools(name, value, shown):
    """`time_major="no"` was read as True (any string is truthy)."""
    cell, params = _lstm()
    with pytest.raises(TypeError, match=rf"{name} must be a bool \(True or False\), got {shown}"):
        lstm_jax.unroll(cell, params, _xs(), **{name: value})


@pytest.mark.parametrize(("cell", "shown"), [("lstm", "str 'lstm'"), (None, "NoneType None")])
def test_cell_must_be_a_cell(cell, shown):
    """`unroll("lstm", ...)` raised AttributeError: 'str' object has no attribute 'sizes'."""
    params = _lstm()[1]
    pattern = rf"cell must be a lstm_jax.Cell, e.g. lstm_jax.lstm\(\); got {shown}"
    with pytest.raises(TypeError, match=pattern):
        lstm_jax.unroll(cell, params, _xs())
    with pytest.raises(TypeError, match=rf"^layer 0: {pattern}"):
        lstm_jax.stacked(cell, (params,), _xs())


@pytest.mark.parametrize("gradient", ["fulll", "", None, 1])
def test_gradient_unknown(gradient):
    cell, params = _lstm()
    pattern = rf"gradient must be one of \['full', 'truncated'\].*got {re.escape(repr(gradient))}"
    with pytest.raises(ValueError, match=pattern):
        lstm_jax.unroll(cell, params, _xs(), gradient=gradient)


def test_gradient_unknown_in_linen_modules():
    cell, _ = _lstm()
    xs = _xs()
    with pytest.raises(ValueError, match=r"\['full', 'truncated'\].*'fulll'"):
        lj.RNN(cell, H, options=lstm_jax.UnrollOptions(gradient="fulll"))
    module = nn.RNN(lj.CellModule(cell, H, gradient="fulll"))
    with pytest.raises(ValueError, match=r"\['full', 'truncated'\].*'fulll'"):
        module.init(jax.random.key(0), xs)


# LSTM options --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["bogus", "cifg2", "", None, 1997])
def test_lstm_unknown_variant(variant):
    valid = re.escape(str(list(lstm_jax.LSTM_VARIANTS)))
    with pytest.raises(
        ValueError,
        match=rf"variant must be one of {valid} \(any case\), got {re.escape(repr(variant))}",
    ):
        lstm_jax.lstm(variant)
    with pytest.raises(ValueError, match="variant must be one of"):
        lstm_jax.lstm_options(variant)


def test_lstm_variant_names_are_case_insensitive_like_gradient_names():
    """`gradient="FULL"` worked and `lstm("cifg")` did not; both now ignore case."""
    assert lstm_jax.lstm("cifg") is lstm_jax.lstm("CIFG")
    assert lstm_jax.lstm("Vanilla") is lstm_jax.lstm("vanilla")
    assert lstm_jax.lstm_options("nIg", peepholes=False) == lstm_jax.lstm_options(
        "NIG", peepholes=False
    )


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"forget_bias": "1"}, r"forget_bias must be a finite number, got str '1'"),
        ({"forget_bias": float("nan")}, r"forget_bias must be a finite number, got nan"),
        ({"input_bias": float("inf")}, r"input_bias must be a finite number, got inf"),
        ({"output_bias": (1.0, "a")}, r"output_bias\[1\] must be a finite number, got str 'a'"),
        ({"forget_bias": True}, r"forget_bias must be a finite number, got bool True"),
        ({"init_range": float("inf")}, r"init_range must be a finite number, got inf"),
        ({"init_range": "0.1"}, r"init_range must be a finite number, got str '0.1'"),
        ({"chrono": 2.5}, r"chrono .*must be an int >= 3 or None, got 2.5"),
        ({"chrono": True}, r"chrono .*must be an int >= 3 or None, got True"),
        ({"chrono": 2}, r"chrono .*must be an int >= 3 or None, got 2"),
        ({"peepholes": "no"}, r"peepholes must be a bool \(True or False\), got str 'no'"),
        ({"coupled": 1}, r"coupled must be a bool \(True or False\), got int 1"),
    ],
)
def test_lstm_option_values_are_checked_when_the_cell_is_built(overrides, pattern):
    """`forget_bias="1"` once failed inside `init` ("data type '' not understood") and a NaN
    bias or a truthy string flag was taken."""
    with pytest.raises(ValueError, match=pattern):
        lstm_jax.lstm(**overrides)


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (
            lambda: lstm_jax.rnn(recurrent_scale=float("inf")),
            r"recurrent_scale must be a finite number, got inf",
        ),
        (
            lambda: lstm_jax.rnn(recurrent_scale="1"),
            r"recurrent_scale must be a finite number, got str '1'",
        ),
        (lambda: lstm_jax.rnn(input_scale=float("inf")), r"input_scale must be a finite number"),
        (lambda: lstm_jax.rnn(alpha="0.5"), r"alpha \(the leak\) must be in \(0, 1\], got '0.5'"),
        (lambda: lstm_jax.gru(reset_after="no"), r"reset_after must be a bool .*got str 'no'"),
        (
            lambda: lstm_jax.slstm(forget_bias=(float("nan"), 6.0)),
            r"forget_bias\[0\] must be a finite number, got nan",
        ),
        (
            lambda: lstm_jax.mlstm(forget_bias=3.0),
            r"forget_bias must be a pair \(low, high\) of finite numbers, got float 3.0",
        ),
        (
            lambda: lstm_jax.slstm(forget_bias="ab"),
            r"forget_bias must be a pair \(low, high\) of finite numbers, got str 'ab'",
        ),
    ],
    ids=[
        "rnn-scale-inf",
        "rnn-scale-str",
        "rnn-input-scale-inf",
        "rnn-alpha-str",
        "gru-reset-after-str",
        "slstm-bias-nan",
        "mlstm-bias-number",
        "slstm-bias-str",
    ],
)
def test_other_cells_option_values_are_checked_when_the_cell_is_built(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


_CELL_BUILDERS = [
    lstm_jax.lstm,
    lstm_jax.gru,
    lstm_jax.rnn,
    lstm_jax.slstm,
    lstm_jax.mlstm,
    lstm_jax.mingru,
]
_CELL_IDS = ["lstm", "gru", "rnn", "slstm", "mlstm", "mingru"]


@pytest.mark.parametrize("build", _CELL_BUILDERS, ids=_CELL_IDS)
def test_init_sizes_that_cannot_fit_in_memory_are_refused_before_xla(build, monkeypatch):
    """`cell.init(key, 8, 10**9)` aborted the process inside XLA (heap_simulator.cc, rc 134).

    Under `jax.eval_shape` nothing reaches XLA, so without the check this test fails by not
    raising instead of killing pytest; the direct call is checked against a lowered limit."""
    cell = build()
    pattern = (
        r"input_size=8, hidden_size=1000000000: the parameters would take .* GiB in float32, "
        r"more than this machine's memory"
    )
    with pytest.raises(ValueError, match=pattern):
        jax.eval_shape(lambda: cell.init(jax.random.key(0), 8, 10**9))
    monkeypatch.setattr(lstm_jax.cells.checks, "memory_limit_bytes", lambda: 100)
    with pytest.raises(ValueError, match=r"hidden_size=8: the parameters would take"):
        cell.init(jax.random.key(0), 3, 8)
    with pytest.raises(TypeError, match=r"dtype must be a floating-point dtype .*got int32"):
        cell.init(jax.random.key(0), 3, 8, jnp.int32)


@pytest.mark.parametrize("build", _CELL_BUILDERS, ids=_CELL_IDS)
@pytest.mark.parametrize(
    ("args", "error", "pattern"),
    [
        ((4, H), TypeError, r"batch_shape must be a tuple of ints, e.g. \(4,\) .*got int 4"),
        (((B,), 4.0), TypeError, r"hidden_size must be a positive int, got float 4.0"),
        (((B,), 0), ValueError, r"hidden_size must be a positive int, got 0"),
        (((-1,), H), TypeError, r"batch_shape must be a tuple of ints.*got tuple \(-1,\)"),
    ],
    ids=["int-batch", "float-hidden", "zero-hidden", "negative-batch"],
)
def test_initial_carry_arguments(build, args, error, pattern):
    """`cell.initial_carry(4, 32)` failed with "'int' object is not iterable"; the signature is
    `initial_carry(batch_shape, hidden_size, dtype)`, and the message says so."""
    with pytest.raises(error, match=r"^initial_carry\(batch_shape, hidden_size, dtype=float32\): "):
        build().initial_carry(*args)
    with pytest.raises(error, match=pattern):
        build().initial_carry(*args)


def test_lstm_unknown_override():
    with pytest.raises(
        TypeError, match=r"unknown LSTM option\(s\) \['peephole'\]; valid options are .*'peepholes'"
    ):
        lstm_jax.lstm(peephole=True)
    with pytest.raises(TypeError, match=r"\['bias', 'gates'\].*'forget_bias'"):
        lstm_jax.lstm("vanilla", gates=3, bias=0.0)


@pytest.mark.parametrize(
    ("variant", "overrides", "pattern"),
    [
        ("NFG", {"coupled": True}, r"coupled=True .* needs .*forget_gate=False"),
        (
            "standard",
            {"coupled": True, "input_gate": False},
            r"coupled=True .*got input_gate=False",
        ),
        (
            "NIG",
            {"chrono": 10},
            r"chrono .* needs free input and forget gates; got input_gate=False",
        ),
        ("CIFG", {"chrono": 10}, r"chrono .*coupled=True"),
        ("NFG", {"chrono": 10}, r"chrono .*forget_gate=False"),
        (
            "standard",
            {"input_activation": "relu"},
            r"input_activation must be one of \[.*'tanh'\], got 'relu'",
        ),
        (
            "vanilla",
            {"output_activation": "gelu"},
            r"output_activation must be one of \[.*'identity'.*\], got 'gelu'",
        ),
        ("vanilla", {"block_size": 2}, r"block_size=2 .*needs peepholes=False .*peepholes=True"),
        ("FGR", {"block_size": 2}, r"block_size=2 .*gate_recurrence=True"),
        (
            "FGR",
            {"gate_inputs": True},
            r"gate_inputs=True .* and gate_recurrence=True .* exclusive",
        ),
        ("standard", {"block_size": 0}, r"block_size must be >= 1, got 0"),
        ("standard", {"block_size": 1.5}, r"block_size must be a positive int, got 1.5"),
        ("standard", {"init_range": 0.0}, r"init_range must be > 0 .*got 0.0"),
        ("standard", {"input_bias": []}, r"input_bias must be a number or one number per block"),
    ],
)
def test_lstm_invalid_combination(variant, overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        lstm_jax.lstm(variant, **overrides)


def test_lstm_sizes_that_do_not_fit_the_memory_blocks():
    with pytest.raises(ValueError, match=r"hidden_size=5 must be a multiple of block_size=2"):
        lstm_jax.lstm(block_size=2).init(jax.random.key(0), 3, 5)
    cell = lstm_jax.lstm("1997", block_size=2, input_bias=(-3.0, -6.0, -9.0))
    with pytest.raises(
        ValueError,
        match=r"input_bias has 3 values, one per memory block, but the LSTM has 2 blocks "
        r"\(hidden_size=4, block_size=2\)",
    ):
        cell.init(jax.random.key(0), 2, 4)


# stacked, bidirectional, init_stacked --------------------------------------------------------


def test_stacked_single_params():
    cell, params = _lstm()
    with pytest.raises(
        ValueError, match=r"params must be a non-empty tuple or list .*got LSTMParams"
    ):
        lstm_jax.stacked(cell, params, _xs())
    with pytest.raises(ValueError, match=r"non-empty tuple or list .*got tuple"):
        lstm_jax.stacked(cell, (), _xs())


def test_stacked_bidirectional_layer_not_a_pair():
    cell, params = _lstm()
    with pytest.raises(
        ValueError, match=r"params must be a \(forward, backward\) pair, got LSTMParams"
    ):
        lstm_jax.stacked(cell, (params,), _xs(), bidirectional=True)


def test_stacked_dropout_with_one_layer_is_refused():
    """`dropout` acts between layers: with one layer it was silently a no-op (the trainer's
    config refuses it, PyTorch warns); an error, as the trainer's."""
    cell, params = _lstm()
    with pytest.raises(
        ValueError, match=r"dropout=0.5 acts between stacked layers, but params has 1 layer"
    ):
        lstm_jax.stacked(cell, (params,), _xs(), dropout=0.5, key=jax.random.key(0))


def test_stacked_wrong_number_of_carries():
    cell, params = _lstm()
    with pytest.raises(ValueError, match=r"carries has 1 entries but there are 2 layers"):
        lstm_jax.stacked(cell, (params, params), _xs(), (cell.initial_carry((B,), H),))


@pytest.mark.parametrize("bad", ["single", "one", "three"])
def test_bidirectional_params_not_a_pair(bad):
    cell, params = _lstm()
    value = {"single": params, "one": (params,), "three": (params, params, params)}[bad]
    name = type(value).__name__
    with pytest.raises(
        ValueError, match=rf"params must be a \(forward, backward\) pair, got {name}"
    ):
        lstm_jax.bidirectional(cell, value, _xs())


def test_bidirectional_carry_not_a_pair():
    cell, params = _lstm()
    with pytest.raises(
        ValueError, match=r"carry must be a \(forward, backward\) pair, got LSTMCarry"
    ):
        lstm_jax.bidirectional(cell, (params, params), _xs(), cell.initial_carry((B,), H))


def test_bidirectional_rejects_reverse():
    cell, params = _lstm()
    with pytest.raises(TypeError, match="unexpected keyword argument 'reverse'"):
        lstm_jax.bidirectional(cell, (params, params), _xs(), reverse=True)


@pytest.mark.parametrize("num_layers", [0, -1])
def test_init_stacked_no_layers(num_layers):
    cell, _ = _lstm()
    with pytest.raises(ValueError, match=rf"num_layers must be >= 1, got {num_layers}"):
        lstm_jax.init_stacked(cell, jax.random.key(0), I, H, num_layers)


# inside jax.jit ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "pattern"),
    [
        ((_xs((T, B, 7)),), {}, ValueError, r"xs has input size 7"),
        ((_xs((T,)),), {}, ValueError, r"xs must have rank 2 .*got shape \(5,\)"),
        ((_xs(dtype=jnp.int32),), {}, TypeError, r"xs must have a floating-point dtype.*int32"),
        (
            (_xs(), lstm_jax.LSTMCarry(jnp.zeros((3, H)), jnp.zeros((3, H)))),
            {},
            ValueError,
            r"carry\.h has shape \(3, 4\) but expected \(2, 4\)",
        ),
        ((_xs(), jnp.zeros((B, H))), {}, ValueError, r"carry has structure"),
        (
            (_xs(),),
            {"lengths": jnp.array([1, 2, 3])},
            ValueError,
            r"lengths must have the batch shape.*\(3,\)",
        ),
        (
            (_xs(),),
            {"lengths": jnp.array([1.0, 2.0])},
            TypeError,
            r"lengths must be an integer array.*float32",
        ),
    ],
)
def test_errors_surface_inside_jit(args, kwargs, error, pattern):
    """Shapes and dtypes are static, so the same error is raised while tracing a jitted caller."""
    cell, params = _lstm()

    @jax.jit
    def run(*args, **kwargs):
        return lstm_jax.unroll(cell, params, *args, **kwargs)[1]

    with pytest.raises(error, match=pattern):
        run(*args, **kwargs)


@pytest.mark.parametrize("window", [0, True])
def test_window_error_inside_jit(window):
    cell, params = _lstm()
    run = jax.jit(lambda xs: lstm_jax.unroll(cell, params, xs, window=window)[1])
    with pytest.raises(ValueError, match=rf"window must be a positive int.*got {window}"):
        run(_xs())


def test_errors_surface_inside_grad_of_jit():
    cell, params = _lstm()
    loss = jax.jit(jax.grad(lambda xs: jnp.sum(lstm_jax.unroll(cell, params, xs)[1])))
    with pytest.raises(ValueError, match=r"xs has input size 2"):
        loss(_xs((T, B, 2)))


# cell / params mismatch ----------------------------------------------------------------------


def test_params_of_another_cell():
    lstm_params = _lstm()[1]
    with pytest.raises((ValueError, TypeError), match="params"):
        lstm_jax.unroll(lstm_jax.gru(), lstm_params, _xs())


def test_layer_and_direction_errors_name_where_they_happened(real_scan):
    """A bad later layer or the backward direction is named in the message."""
    cell = lstm_jax.lstm()
    params = lstm_jax.init_stacked(cell, jax.random.key(0), I, H, 2)
    wrong_second = (params[0], cell.init(jax.random.key(1), H + 1, H))
    with pytest.raises(ValueError, match=r"^layer 1: xs has input size 4 .*input_size=5"):
        lstm_jax.stacked(cell, wrong_second, _xs())
    pair = (cell.init(jax.random.key(0), I, H), cell.init(jax.random.key(1), I + 2, H))
    with pytest.raises(ValueError, match=r"^backward direction: xs has input size 3"):
        lstm_jax.bidirectional(cell, pair, _xs())


# online algorithms -----------------------------------------------------------------------------


def _online_setup():
    from lstm_jax.online.rtrl import rtrl

    cell, params = _lstm()
    return rtrl(cell), params, cell.initial_carry((B,), H)


def _square(y, target):
    return jnp.sum((y - target) ** 2)


def test_accumulate_params_of_another_cell():
    """GRU params for an LSTM's RTRL raised "mul got incompatible shapes" from inside the scan."""
    from lstm_jax.online.protocol import accumulate

    algorithm, _, carry = _online_setup()
    gru_params = lstm_jax.gru().init(jax.random.key(0), I, H)
    pattern = (
        r"params GRUParams\(w=\(3, 12\).*carry LSTMCarry\(h=\(2, 4\).* and xs \(5, 2, 3\) do "
        r"not fit this algorithm's cell: the params must come from its `init\(key, I, H\)`"
    )
    with pytest.raises(ValueError, match=pattern):
        accumulate(algorithm, gru_params, _xs(), jnp.zeros((T, B, H)), _square, carry)


@pytest.mark.parametrize(
    ("targets", "shown"),
    [
        (jnp.zeros((T - 1, B, H)), r"targets has shape \(4, 2, 4\)"),
        ((jnp.zeros((T, B, H)), jnp.ones(T + 1)), r"targets\[1\] has shape \(6,\)"),
        ((jnp.zeros((T, B, H)), 1.0), r"targets\[1\] has shape \(\)"),
    ],
    ids=["short", "weight-too-long", "scalar-leaf"],
)
def test_accumulate_targets_of_another_length(targets, shown):
    """A target with the wrong T raised "scan got values with different leading axis sizes"."""
    from lstm_jax.online.protocol import accumulate

    algorithm, params, carry = _online_setup()
    with pytest.raises(
        ValueError, match=rf"{shown}: its leading \(time\) axis must be T=5, the steps of xs"
    ):
        accumulate(algorithm, params, _xs(), targets, lambda y, t: _square(y, t[0]), carry)
