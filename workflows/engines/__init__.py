"""Workflow engines behind one interface: miniwdl here, a Cromwell server, BatchCompute.

Nothing else in RenderHub talks to Cromwell or to BatchCompute's Cromwell app; each engine
module is imported only when a run uses it (the BatchCompute SDK is GPL-licensed).
"""

from __future__ import annotations

import importlib

from ..choices import Engine as EngineName
from .base import CallInfo, Engine, EngineError, LogText, RunStatus, Submission

__all__ = [
    "CallInfo",
    "Engine",
    "EngineError",
    "LogText",
    "RunStatus",
    "Submission",
    "get_engine",
]

_MODULES = {
    EngineName.MINIWDL: "workflows.engines.miniwdl",
    EngineName.CROMWELL: "workflows.engines.cromwell",
    EngineName.BATCHCOMPUTE_CROMWELL: "workflows.engines.batchcompute_cromwell",
}


def get_engine(name: str) -> Engine:
    try:
        module = importlib.import_module(_MODULES[EngineName(name)])
    except (KeyError, ValueError):
        raise EngineError(f"Unknown workflow engine {name!r}.") from None
    engine: Engine = module.engine()
    return engine
