"""A bound on the compiled executables each jitted kernel keeps loaded.

Why: ``jax.jit`` keeps every executable it compiles for the life of the process (its caches hold
thousands of entries and never look at their size, see jax-ml/jax#16778). On XLA:CPU each
executable is JIT-linked machine code with memory mappings of its own; measured here (JAX 0.10.2,
2 cores), per executable:

===========================================  ============  ===========
kernel                                       lr_annealing  multi_power
===========================================  ============  ===========
``fit.value_and_grad``                                235          650
``fit.starts``                                        195          400
``predict``                                            64          215
``intervals.log_prediction_and_jacobian``             178          730
===========================================  ============  ===========

A process that keeps meeting new shapes climbs toward ``vm.max_map_count`` (65,530 by default)
and dies with ``LLVM compilation error: Cannot allocate memory`` and a segfault, with RAM to
spare: a fresh server fitting runs of many lengths did after 40-80 fits (a new shape of an
``auto`` fit costs about 3,800 mappings). Coarse shape buckets (:mod:`fitting.padding`) make
new shapes rare; this module makes them harmless.

How: :func:`bounded_jit` is ``jax.jit`` with a least-recently-used table of at most
:data:`MAX_EXECUTABLES` signatures per kernel (static arguments, tree structure, shapes, dtypes
and weak types of the others: what ``jax.jit`` keys its executables on). Each signature gets its
own ``jax.jit`` of the kernel, so that the one evicted can be dropped alone: its
``clear_cache()`` (JAX's supported eviction, which drops a jitted function's executables and
traces) releases the executable and its mappings, measured 730 -> 81 mappings for twelve
``predict`` executables. ``jax.clear_caches()`` would do it for everything at once, and with it
every kernel still in use.

Why 8: the worst case is every kernel full of ``multi_power`` executables, 8 x (650 + 400 + 215
+ 730) ~ 16,000 mappings, a quarter of the default limit, next to ~2,000 for the interpreter
and its libraries. A fit uses one shape of each kernel and the forecast that follows shares the
fit's prediction shapes (:func:`fitting.padding.prediction_shape`), so 8 holds the shapes of
the last four (shape bucket, law) pairs a client used: ``auto`` on two kinds of run, or one law
on eight, recompile nothing. Past that, the least recently used shape recompiles when it comes
back (0.5-30 s), which costs time, not the process.
"""

from __future__ import annotations

import collections
import functools
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import jax

MAX_EXECUTABLES = 8  # signatures (= compiled executables) each bounded kernel keeps loaded

# Every kernel made by bounded_jit, by name (for tests, benchmarks and diagnostics).
KERNELS: dict[str, BoundedJit] = {}


def _leaf_signature(leaf: Any) -> Hashable:
    """What ``jax.jit`` compiles a leaf for: shape, dtype and weak type of an array; the type of a
    Python scalar (weakly typed, any value)."""
    shape = getattr(leaf, "shape", None)
    if shape is None:
        return type(leaf)
    return tuple(shape), str(leaf.dtype), bool(getattr(leaf, "weak_type", False))


def signature(args: Sequence[Any], kwargs: dict[str, Any], static_argnums: tuple[int, ...]):
    """Hashable key of a call: the static arguments themselves, the tree structure and the
    per-leaf :func:`_leaf_signature` of the rest. Two calls with one key share an executable."""
    static = tuple(args[i] for i in static_argnums if i < len(args))
    dynamic = [a for i, a in enumerate(args) if i not in static_argnums]
    leaves, tree = jax.tree_util.tree_flatten((dynamic, kwargs))  # names are in the tree
    return static, tree, tuple(_leaf_signature(leaf) for leaf in leaves)


@dataclass
class _Entry:
    """One signature's own ``jax.jit``; ``users`` calls are inside it, and an entry evicted while
    in use is cleared by its last user."""

    jitted: Callable
    users: int = 0
    evicted: bool = False


class BoundedJit:
    """A jitted kernel that keeps at most ``capacity`` compiled signatures, least recently used
    evicted (see module docstring). Thread-safe; the lock is held for bookkeeping only, never
    while compiling or running."""

    def __init__(self, fn: Callable, static_argnums: tuple[int, ...], capacity: int, name: str):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got capacity={capacity}")
        self.fn = fn
        self.static_argnums = static_argnums
        self.capacity = capacity
        self.name = name
        self.evictions = 0
        self.compilations = 0  # signatures added (each compiled, or loaded from JAX's disk cache)
        self._entries: collections.OrderedDict[Hashable, _Entry] = collections.OrderedDict()
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        key = signature(args, kwargs, self.static_argnums)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(self._new_jit())
                self.compilations += 1
                self._evict_beyond(self.capacity)
            else:
                self._entries.move_to_end(key)
            entry.users += 1
        try:
            return entry.jitted(*args, **kwargs)
        finally:
            with self._lock:
                entry.users -= 1
                if entry.evicted and entry.users == 0:
                    entry.jitted.clear_cache()

    def _new_jit(self) -> Callable:
        # A function object of its own: clear_cache() evicts the traces keyed on it, no other's.
        @functools.wraps(self.fn)
        def kernel(*args, **kwargs):
            return self.fn(*args, **kwargs)

        return jax.jit(kernel, static_argnums=self.static_argnums)

    def _evict_beyond(self, size: int) -> None:
        while len(self._entries) > size:
            _, entry = self._entries.popitem(last=False)
            entry.evicted = True
            self.evictions += 1
            if entry.users == 0:
                entry.jitted.clear_cache()

    @property
    def signatures(self) -> int:
        """Signatures held now (each one compiled executable once called)."""
        return len(self._entries)

    def executables(self) -> int:
        """Executables JAX holds for this kernel now, counted in JAX's own caches (diagnostics:
        uses the private ``_cache_size`` of jitted functions, 0 where it is missing)."""
        with self._lock:
            held = [entry.jitted for entry in self._entries.values()]
        return sum(getattr(jitted, "_cache_size", lambda: 0)() for jitted in held)

    def clear_cache(self) -> None:
        """Drop every compiled signature (as ``jax.jit(...).clear_cache()`` does)."""
        with self._lock:
            self._evict_beyond(0)

    def lower(self, *args, **kwargs):
        """``jax.jit(fn).lower(...)``, outside the table (for inspection; compiles nothing kept)."""
        return jax.jit(self.fn, static_argnums=self.static_argnums).lower(*args, **kwargs)


def bounded_jit(
    static_argnums: int | Sequence[int] = (),
    capacity: int = MAX_EXECUTABLES,
    name: str | None = None,
) -> Callable[[Callable], BoundedJit]:
    """Decorator: ``jax.jit(fn, static_argnums=...)`` keeping at most ``capacity`` compiled
    signatures (:class:`BoundedJit`), registered in :data:`KERNELS` under ``name`` (default: the
    function's name)."""
    statics = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    def wrap(fn: Callable) -> BoundedJit:
        kernel = BoundedJit(fn, statics, capacity, name or fn.__name__)
        KERNELS[kernel.name] = kernel
        return kernel

    return wrap
