"""Online gradient algorithms, above the driver, on one interface (`protocol.OnlineAlgorithm`):
the 1997 traces (`traces`), exact RTRL and SnAp-n (`rtrl`), UORO (`uoro`), e-prop
(`eligibility`), RFLO (`rflo`), all by name in `registry`; and the linear `Readout` they learn
through."""

from lstm_jax.online import eligibility, protocol, registry, rflo, rtrl, traces, uoro
from lstm_jax.online.protocol import OnlineAlgorithm, OnlineStep, accumulate
from lstm_jax.online.readout import Readout
from lstm_jax.online.registry import ONLINE_ALGORITHMS, online_algorithm, valid_algorithms
from lstm_jax.online.traces import online_gradient

__all__ = [
    "ONLINE_ALGORITHMS",
    "OnlineAlgorithm",
    "OnlineStep",
    "Readout",
    "accumulate",
    "eligibility",
    "online_algorithm",
    "online_gradient",
    "protocol",
    "registry",
    "rflo",
    "rtrl",
    "traces",
    "uoro",
    "valid_algorithms",
]
