"""Shares (accuracy drop, FLOPs) as people write them: ``"1%"`` or a fraction ``0.01``.

A bare number of 0.5 or more is refused: ``--max-drop 1`` reads as "1%" to a person and as
100% to a program, so it has to be written ``1%`` or ``0.01`` (searchctl, the C client library
and searchd's parameter check apply the same rule to ``max_drop``)."""


def parse_share(value, name="max_drop", bare_limit=0.5):
    """Returns the fraction ``value`` stands for; raises ValueError with what to write."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: give 1% or 0.01, not {value!r}")
    if isinstance(value, (int, float)):
        v, percent = float(value), False
    elif isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            v = float(text[:-1] if percent else text)
        except ValueError:
            raise ValueError(f"{name}: give 1% or 0.01, not {value!r}") from None
        if percent:
            v /= 100
    else:
        raise ValueError(f"{name}: give 1% or 0.01, not {value!r}")
    if not percent and bare_limit is not None and bare_limit <= v <= 100:
        raise ValueError(f"{name} {value!r} would allow a {100 * v:g}% accuracy drop; write "
                         f"{v:g}% for {v:g} percent, or the fraction {v / 100:g}")
    if not (0 <= v <= 1):
        raise ValueError(f"{name}: {value!r} is not between 0% and 100%")
    return v
