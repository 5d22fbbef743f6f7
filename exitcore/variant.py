"""Patch variants as data: which context runs each teardown op, and the flags that change cost.

A variant is a plain mapping (YAML-shaped) turned into a frozen :class:`Variant` by
:meth:`Variant.from_dict`; nothing in the cost model branches on a variant's name. The variants
of DESIGN.md section 3 are presets (``exitcore/presets/variant/*.yaml``, read by
:mod:`exitcore.presets`).

Mapping shape::

    name: combined
    description: free text
    ops: {X0: exit_klock, X1: exit, X2: none, ..., X5: [exit, reaper], ...}
    notify: exit | reaper          # where the parent is woken (2 us under KERNEL_LOCK)
    tlb_flush: per_page | asid     # asid: whole-ASID flush only, X4 dropped wherever placed
    walk: per_virtual_page | full_user_va | sparse   # how X2 walks; sparse: X2 dropped
    pte_ns: null | 110.0           # per-PTE X3 cost replacing the architecture's
    locks: {X1: [vnode], X6: [fpageq, pageq], X8: [kmmap, schedlock], ...}
    percpu_page_cache: 16          # pages per CPU in front of the free-page lock (0: none)
    amap_free: per_page | list     # how X6 hands an amap's pages to the free-page lock
    rw_wakeup: one | all           # whom an rwlock's release wakes: the next waiter, or all

``locks`` says which locks an op takes where it runs (its acquisition unit is the op's:
:func:`exitcore.teardown.teardown_costs`); absent, :data:`DEFAULT_LOCKS`. Locks of an op run in
``exit_klock`` are nested in that KERNEL_LOCK section and not simulated on their own.

An op given as a list runs once in each listed context (the committed pmap_purge flushes the
ASID both in exit and in the reaper). ``none`` (or an empty list) drops the op.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from exitcore.locks import LOCKS
from exitcore.result import CONTEXTS, OPS

OP_CONTEXTS: Final[tuple[str, ...]] = (*CONTEXTS, "none")
"""Allowed values of an op's context."""

NOTIFY_CONTEXTS: Final[tuple[str, ...]] = ("exit", "reaper")
TLB_FLUSHES: Final[tuple[str, ...]] = ("per_page", "asid")
WALKS: Final[tuple[str, ...]] = ("per_virtual_page", "full_user_va", "sparse")
AMAP_FREES: Final[tuple[str, ...]] = ("per_page", "list")
RW_WAKEUPS: Final[tuple[str, ...]] = ("one", "all")
_KEYS: Final[tuple[str, ...]] = (
    "name",
    "description",
    "ops",
    "notify",
    "tlb_flush",
    "walk",
    "pte_ns",
    "locks",
    "percpu_page_cache",
    "amap_free",
    "rw_wakeup",
)

DEFAULT_LOCKS: Final[dict[str, tuple[str, ...]]] = {
    # (derived) uvm_unmap_detach -> uvn_detach takes the object's lock per object entry
    "X1": ("vnode",),
    # (derived) uvm_pagefree: pmemrange insert under uvm.fpageqlock, uvm_pageclean under
    # uvm.pageqlock
    "X6": ("fpageq", "pageq"),
    # (derived) uvm_uarea_free -> km_free takes the kernel map lock; wakeup(parent) SCHED_LOCK
    "X8": ("kmmap", "schedlock"),
}
"""Locks every OpenBSD variant's teardown takes (kernels of 2024 and 2025 alike)."""


@dataclass(frozen=True, slots=True)
class Variant:
    """One patch variant.

    Attributes
    ----------
    name, description : str
    op_contexts : tuple of tuple of str
        For each op of :data:`exitcore.result.OPS`, the contexts (from
        :data:`exitcore.result.CONTEXTS`) that run it, once each; empty when dropped.
    notify : str
        ``"exit"``: the parent is woken from the exiting process (the 2 us notification runs in
        ``exit_klock``); ``"reaper"``: after the reaper, holding KERNEL_LOCK.
    tlb_flush : str
        ``"per_page"`` (X4 runs where placed) or ``"asid"`` (whole-ASID flush only: X4 is
        dropped, whatever ``ops`` says).
    walk : str
        ``"per_virtual_page"`` (X2 over each map entry), ``"full_user_va"`` (X2 over the whole
        user address space), ``"sparse"`` (only populated tables are touched: X2 is dropped,
        whatever ``ops`` says).
    pte_ns : float or None
        Per-PTE X3 cost overriding the architecture's (Linux exit_mmap batching).
    op_locks : tuple of tuple of str
        For each op, the locks (:data:`exitcore.locks.LOCKS`) it takes where it runs.
    percpu_page_cache : int
        Pages per CPU cached in front of the free-page lock (16 since 2024-05-01); 0: every page
        allocation and free takes the lock, else one refill or drain per that many pages.
    amap_free : str
        How the teardown's page frees (X6) reach the free-page lock. ``"per_page"``:
        ``amap_wipeout`` frees each anon's page with ``uvm_pagefree`` (through the per-CPU cache
        when there is one; uvm_amap.c 1.94 of 2024-04-17 and later). ``"list"``: it gathers the
        amap's pages on a list and frees them with one ``uvm_pmr_freepageq``, one acquisition of
        the free-page lock per amap (uvm_amap.c 1.82 of 2020-01-04 to 1.93, so the kernel of
        targets 9-11); the per-CPU cache does not apply to it.
    rw_wakeup : str
        Whom an rwlock's release wakes (the ``kmmap`` and ``vnode`` locks). ``"all"``:
        ``rw_do_exit`` calls ``wakeup(rwl)`` and every sleeper takes a CPU to re-check the lock,
        all but one to sleep again (kern_rwlock.c up to 1.50 of 2023-07-14 and 1.52 of
        2024-12-03). ``"one"``: ``wakeup_one`` (1.51 of 2024-11-27, then 1.53 of 2025-01-04 and
        later).
    """

    name: str
    description: str
    op_contexts: tuple[tuple[str, ...], ...]
    notify: str
    tlb_flush: str
    walk: str
    pte_ns: float | None = None
    op_locks: tuple[tuple[str, ...], ...] = tuple(DEFAULT_LOCKS.get(op, ()) for op in OPS)
    percpu_page_cache: int = 16
    amap_free: str = "per_page"
    rw_wakeup: str = "one"

    def __post_init__(self) -> None:
        if len(self.op_contexts) != len(OPS):
            raise ValueError(f"ops: expected {len(OPS)} ops {list(OPS)}")
        for op, contexts in zip(OPS, self.op_contexts, strict=True):
            for ctx in contexts:
                if ctx not in CONTEXTS:
                    raise ValueError(f"ops.{op}: {ctx!r} is not one of {list(OP_CONTEXTS)}")
        _check_choice("notify", self.notify, NOTIFY_CONTEXTS)
        _check_choice("tlb_flush", self.tlb_flush, TLB_FLUSHES)
        _check_choice("walk", self.walk, WALKS)
        _check_choice("amap_free", self.amap_free, AMAP_FREES)
        _check_choice("rw_wakeup", self.rw_wakeup, RW_WAKEUPS)
        # The flags win over the op table: a whole-ASID flush leaves no per-page flush to do,
        # a sparse walk no range walk. Normalizing here keeps `op_contexts` the single truth,
        # so a study-wide `tlb_flush: asid` or `walk: sparse` override works on any variant.
        normalized = [tuple(c) for c in self.op_contexts]
        if self.tlb_flush == "asid":
            normalized[OPS.index("X4")] = ()
        if self.walk == "sparse":
            normalized[OPS.index("X2")] = ()
        object.__setattr__(self, "op_contexts", tuple(normalized))
        if self.pte_ns is not None and (
            isinstance(self.pte_ns, bool)
            or not isinstance(self.pte_ns, int | float)
            or not self.pte_ns >= 0
        ):
            raise ValueError(f"pte_ns: expected null or a number >= 0, got {self.pte_ns!r}")
        if len(self.op_locks) != len(OPS):
            raise ValueError(f"locks: expected {len(OPS)} ops {list(OPS)}")
        for op, locks in zip(OPS, self.op_locks, strict=True):
            for lock in locks:
                if lock not in LOCKS:
                    raise ValueError(f"locks.{op}: {lock!r} is not one of {list(LOCKS)}")
        pc = self.percpu_page_cache
        if isinstance(pc, bool) or not isinstance(pc, int) or pc < 0:
            raise ValueError(f"percpu_page_cache: expected an integer >= 0, got {pc!r}")

    def locks_of(self, op: str) -> tuple[str, ...]:
        """Locks ``op`` takes where it runs."""
        if op not in OPS:
            raise ValueError(f"op: {op!r} is not one of {list(OPS)}")
        return self.op_locks[OPS.index(op)]

    def contexts_of(self, op: str) -> tuple[str, ...]:
        """Contexts that run ``op`` (empty when the variant drops it)."""
        if op not in OPS:
            raise ValueError(f"op: {op!r} is not one of {list(OPS)}")
        return self.op_contexts[OPS.index(op)]

    @property
    def notify_from_exit(self) -> bool:
        return self.notify == "exit"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Variant:
        """Parse a YAML-shaped mapping (see the module docstring).

        Raises ``ValueError`` naming the field and the allowed values on any unknown key, op,
        context or flag.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"variant: expected a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - set(_KEYS))
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown variant field; allowed: {list(_KEYS)}")
        for key in ("name", "ops"):
            if key not in d:
                raise ValueError(f"{key}: missing; a variant needs {['name', 'ops']}")
        ops = d["ops"]
        if not isinstance(ops, Mapping):
            raise ValueError(f"ops: expected a mapping of {list(OPS)} to contexts")
        bad_ops = sorted(set(ops) - set(OPS))
        if bad_ops:
            raise ValueError(f"ops: unknown operation {bad_ops[0]!r}; allowed: {list(OPS)}")
        missing = [op for op in OPS if op not in ops]
        if missing:
            raise ValueError(f"ops.{missing[0]}: missing; give every op of {list(OPS)}")
        op_contexts = tuple(_parse_contexts(op, ops[op]) for op in OPS)
        op_locks = _parse_locks(d.get("locks", DEFAULT_LOCKS))
        pc = d.get("percpu_page_cache", 16)
        if isinstance(pc, float) and pc == int(pc):
            pc = int(pc)
        pte_ns = d.get("pte_ns")
        return cls(
            name=str(d["name"]),
            description=str(d.get("description", "")),
            op_contexts=op_contexts,
            notify=d.get("notify", "reaper"),
            tlb_flush=d.get("tlb_flush", "per_page"),
            walk=d.get("walk", "per_virtual_page"),
            pte_ns=float(pte_ns)
            if isinstance(pte_ns, int) and not isinstance(pte_ns, bool)
            else pte_ns,
            op_locks=op_locks,
            percpu_page_cache=pc,
            amap_free=d.get("amap_free", "per_page"),
            rw_wakeup=d.get("rw_wakeup", "one"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The YAML-shaped mapping; ``Variant.from_dict(v.to_dict()) == v``."""
        ops: dict[str, Any] = {}
        for op, contexts in zip(OPS, self.op_contexts, strict=True):
            ops[op] = (
                "none" if not contexts else contexts[0] if len(contexts) == 1 else list(contexts)
            )
        return {
            "name": self.name,
            "description": self.description,
            "ops": ops,
            "notify": self.notify,
            "tlb_flush": self.tlb_flush,
            "walk": self.walk,
            "pte_ns": self.pte_ns,
            "locks": {
                op: list(locks) for op, locks in zip(OPS, self.op_locks, strict=True) if locks
            },
            "percpu_page_cache": self.percpu_page_cache,
            "amap_free": self.amap_free,
            "rw_wakeup": self.rw_wakeup,
        }


def _check_choice(field: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{field}: {value!r} is not one of {list(allowed)}")


def _parse_contexts(op: str, value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) or value is None else value
    if not isinstance(items, list | tuple):
        raise ValueError(
            f"ops.{op}: expected a context or a list of them; allowed: {list(OP_CONTEXTS)}"
        )
    contexts: list[str] = []
    for item in items:
        if item is None or item == "none":
            continue
        if item not in CONTEXTS:
            raise ValueError(f"ops.{op}: {item!r} is not one of {list(OP_CONTEXTS)}")
        contexts.append(str(item))
    return tuple(contexts)


def _parse_locks(value: object) -> tuple[tuple[str, ...], ...]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ValueError(f"locks: expected a mapping of ops {list(OPS)} to lists of locks")
    bad = sorted(set(value) - set(OPS))
    if bad:
        raise ValueError(f"locks: unknown operation {bad[0]!r}; allowed: {list(OPS)}")
    out = []
    for op in OPS:
        items = value.get(op, ())
        items = [items] if isinstance(items, str) else items
        if items is None:
            items = []
        if not isinstance(items, list | tuple):
            raise ValueError(f"locks.{op}: expected a list of locks; allowed: {list(LOCKS)}")
        for lock in items:
            if lock not in LOCKS:
                raise ValueError(f"locks.{op}: {lock!r} is not one of {list(LOCKS)}")
        out.append(tuple(str(x) for x in items))
    return tuple(out)


def _builtin() -> dict[str, Variant]:
    from exitcore import presets

    return {name: Variant.from_dict(d) for name, d in presets.load_all("variant").items()}


VARIANTS: Final[dict[str, Variant]] = _builtin()
"""The built-in variants (``exitcore/presets/variant``), parsed."""
