"""A chapter's fallback rule: which real dataset a profile asks for, how to check it is there, and what runs
instead when it is not.

A chapter's ``config`` module declares ``FALLBACK = Fallback(...)``; :func:`xmr_lib.course.runs.params` applies it
before the parameters are recorded, so the record holds the parameters that ran, ``data/real`` = 1 when the real
data was found and ``data/fallback`` = 1 when the embedded set ran instead. A notebook does not rewrite its
parameters after they were recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

#: the errors that mean "this dataset is not on disk" (a broken file raises something else and is not hidden)
MISSING = (FileNotFoundError, ValueError)


@dataclass(frozen=True)
class Fallback:
    """Args:
    wants_real: ``P → bool``: do these parameters ask for a real dataset read from ``data_root``?
    probe: ``P → None``: a cheap check (file lists, index files) that raises one of :data:`MISSING`, naming what
        is absent, when the real dataset is not there.
    instead: ``(P, error) → dict``: the parameters of the embedded run that replaces it (the default profile's
        data at the full profile's training settings, sizes clamped to what the embedded set holds).
    what: one line for the banner: what runs instead (e.g. "the embedded 'shapes' set").
    fetch: ``P → str``: the command that fetches the real dataset.
    profiles: profiles in which a missing dataset falls back; elsewhere it is an error naming the fix.
    is_missing: ``error → bool``: refine :data:`MISSING` (e.g. only ValueErrors about ``data_root``).
    tiny: the knobs that ``tiny=True`` sets last (the ``full`` path at CI scale: random paper backbones, tiny
        images, a few steps); ``None``: the chapter has no tiny path.

    A chapter whose parameters need one more step once the data is decided (e.g. a dataset's own class split)
    overrides :meth:`adjust`.
    """

    wants_real: Callable[[Any], bool]
    probe: Callable[[Any], None]
    instead: Callable[[Any, Exception], Mapping[str, Any]]
    what: str
    fetch: Callable[[Any], str]
    profiles: tuple[str, ...] = ("full",)
    is_missing: Callable[[Exception], bool] = lambda e: True
    tiny: Mapping[str, Any] | None = None

    def apply(self, p: Any) -> tuple[bool, bool, str]:
        """Check the real data of ``p`` and update ``p`` in place when it is missing; then :meth:`adjust`, then the
        :attr:`tiny` knobs when ``p.tiny`` is set.

        Returns ``(real, fell_back, banner)``: whether real data will be read, whether the embedded set replaces it,
        and the message to show (empty when nothing fell back)."""
        real, fell_back, banner = self._decide(p)
        self.adjust(p, real)
        if self.tiny is not None and p.get("tiny"):
            p.update(self.tiny)
        return real, fell_back, banner

    def adjust(self, p: Any, real: bool) -> None:
        """One more step once the data is decided (``real``: the real dataset will be read); nothing by default."""

    def _decide(self, p: Any) -> tuple[bool, bool, str]:
        if not self.wants_real(p):
            return False, False, ""
        try:
            self.probe(p)
        except MISSING as e:
            if not self.is_missing(e):
                raise
            if p.profile not in self.profiles:
                raise ValueError(f"{e} — fetch it with `{self.fetch(p)}` and pass data_root=DIR") from e
            asked = {k: p[k] for k in p if k != "settings"}
            p.update(self.instead(p, e))
            changed = ", ".join(f"{k}={p[k]!r}" for k in sorted(p) if k in asked and p[k] != asked[k])
            banner = (
                f"!! The real data is not available under data_root={asked.get('data_root')!r}:\n!!   {e}\n"
                f"!! Fetch it with `{self.fetch(_Frozen(asked))}` and pass data_root=DIR.\n"
                f"!! FALLING BACK to {self.what}: the numbers below are NOT the paper's, and the paper claims "
                f"decided on real data will read 'not run'.\n!! Parameters changed: {changed or 'none'}"
            )
            return False, True, banner
        return True, False, ""


class _Frozen(dict):
    """The parameters as asked (before the fallback), readable as attributes."""

    def __getattr__(self, k: str) -> Any:
        try:
            return self[k]
        except KeyError as e:
            raise AttributeError(k) from e
