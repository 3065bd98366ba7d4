"""miniwdl's call cache as RenderHub uses it (installed by ``renderhub_miniwdl_host.main``).

* ``meta { volatile: true }`` (WDL 1.2, Cromwell): the task is never served from the
  cache and never stored in it; miniwdl 1.16 does not know the key.
* A call served from the cache leaves ``cached_from`` in its folder: the folder of the call
  that made the outputs (remembered when it was stored), so RenderHub can link the run it
  came from. miniwdl keeps only the outputs in a cache entry.
* A workflow (or sub-workflow) is never served whole from the cache, which would leave no
  calls to show and skip its volatile tasks: its calls are looked up one by one instead.

Like the plugin, this module must not import Django.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

SOURCES = "renderhub-sources"  # in the cache folder: the call folder behind each entry
CACHED_FROM = "cached_from"  # in a cached call's folder


class _Cache:
    """One call's view of the run's cache (a proxy: everything else goes to ``cache``)."""

    def __init__(self, cache: Any, volatile: bool, sources: Path) -> None:
        self._cache = cache
        self._volatile = volatile
        self._sources = sources
        self.hit_source = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache, name)

    def _source_file(self, key: str) -> Path:
        return self._sources / hashlib.sha256(key.encode()).hexdigest()

    def get(self, key: str, inputs: Any, output_types: Any) -> Any:
        if self._volatile:
            return None
        hit = self._cache.get(key, inputs, output_types)
        if hit is not None:
            with contextlib.suppress(OSError):
                self.hit_source = self._source_file(key).read_text()
        return hit

    def put(self, key: str, outputs: Any, run_dir: str | None = None, **kwargs: Any) -> Any:
        if self._volatile:
            return None
        answer = self._cache.put(key, outputs, run_dir=run_dir, **kwargs)
        if run_dir:
            with contextlib.suppress(OSError):
                self._sources.mkdir(parents=True, exist_ok=True)
                self._source_file(key).write_text(str(Path(run_dir).resolve()))
        return answer


def _is_true(value: Any) -> bool:
    """A meta value: miniwdl keeps literals as expressions (``WDL.Expr.Boolean``)."""
    return value is True or getattr(value, "value", None) is True


def wrap_run_local_task(original: Callable[..., Any]) -> Callable[..., Any]:
    from WDL.runtime import cache as cache_module

    def run_local_task(cfg: Any, task: Any, inputs: Any, **kwargs: Any) -> Any:
        volatile = _is_true((getattr(task, "meta", None) or {}).get("volatile"))
        sources = Path(cfg.get("call_cache", "dir")) / SOURCES
        with contextlib.ExitStack() as stack:
            cache = kwargs.get("_cache")
            if cache is None:  # a task-only run: miniwdl would make its own
                cache = stack.enter_context(cache_module.new(cfg, logging.getLogger("wdl")))
            proxy = _Cache(cache, volatile, sources)
            run_dir, outputs = original(cfg, task, inputs, **{**kwargs, "_cache": proxy})
            if proxy.hit_source:
                with contextlib.suppress(OSError):
                    (Path(run_dir) / CACHED_FROM).write_text(proxy.hit_source)
            return run_dir, outputs

    return run_local_task


class _NoWholeWorkflow:
    """A workflow's cache that never answers for the workflow itself (only for its calls)."""

    def __init__(self, cache: Any, own_prefix: str) -> None:
        self._cache = cache
        self._own_prefix = own_prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache, name)

    def get(self, key: str, inputs: Any, output_types: Any) -> Any:
        if key.startswith(self._own_prefix):
            return None
        return self._cache.get(key, inputs, output_types)


def wrap_run_local_workflow(original: Callable[..., Any]) -> Callable[..., Any]:
    from WDL.runtime import cache as cache_module

    def run_local_workflow(cfg: Any, workflow: Any, inputs: Any, **kwargs: Any) -> Any:
        with contextlib.ExitStack() as stack:
            cache = kwargs.get("_cache")
            if cache is None:  # the top-level workflow: miniwdl would make it
                cache = stack.enter_context(cache_module.new(cfg, logging.getLogger("wdl")))
            proxy = _NoWholeWorkflow(cache, f"{workflow.name}/{workflow.digest}/")
            return original(cfg, workflow, inputs, **{**kwargs, "_cache": proxy})

    return run_local_workflow


def install() -> None:
    """Route every task call miniwdl makes (in a workflow or alone) through the wrapper."""
    import WDL.runtime
    import WDL.runtime.workflow

    wrapped = wrap_run_local_task(WDL.runtime.task.run_local_task)
    WDL.runtime.workflow.run_local_task = wrapped
    WDL.runtime.run_local_task = wrapped
    workflows = wrap_run_local_workflow(WDL.runtime.workflow.run_local_workflow)
    WDL.runtime.workflow.run_local_workflow = workflows
    WDL.runtime.run_local_workflow = workflows
