"""Gradients through time: the modes and the cuts that implement them (`modes`, the layer the
cells build on), and, above the cells, the generic loops over a cell's `Derivation`: the
reference backward pass (`analytic`), the fast unroll (`fused`); and the online algorithms on
one interface (`online_protocol`): the 1997 traces (`online`), exact RTRL and SnAp-n (`rtrl`),
UORO (`uoro`), e-prop and RFLO (`eligibility`), all by name in `online_algorithms`. Only
`modes` is imported here, so the cells can import it without a cycle."""

from lstm_jax.gradients.modes import (
    Gradient,
    cut_gate_recurrence,
    cut_window,
    keep,
    resolve_gradient,
)

__all__ = ["Gradient", "cut_gate_recurrence", "cut_window", "keep", "resolve_gradient"]
