"""Application plumbing shared by every command: the error boundary of ``tools/`` (:mod:`.cli`), the error
types and exit codes (:mod:`.errors`) and the CPU thread settings (:mod:`.runtime`).

Imports nothing of ``annot`` outside this room, and nothing heavy at import time: ``tools/*.py`` import
:func:`annot.app.runtime.configure_threads` before torch loads.
"""
