"""searchd from Python: the daemon's client and the engine.

``Client`` talks msgpack-RPC to a running searchd (Unix socket or TCP), with every method of
the protocol and ``schedule.updated`` notifications through a callback or an iterator.
``Model`` loads a model folder and classifies texts under a schedule, in this process, with
the same engine as searchctl (through ``libsdpy``, a shared library meson builds).

    from searchd import Client, Model
    with Client() as c:                         # $XDG_RUNTIME_DIR/searchd.sock by default
        rec = c.get("demo", max_drop="1%")     # the fastest schedule under 1% drop
    model = Model("models/sst2-bert-L4-H128-demo")
    for p in model.classify(["a gorgeous movie"], schedule=rec):
        print(p.label, p.probabilities)
"""

from .budget import parse_share
from .client import Client, SearchdError, default_socket
from .model import Model, Prediction

__all__ = ["Client", "SearchdError", "default_socket", "Model", "Prediction", "parse_share"]
