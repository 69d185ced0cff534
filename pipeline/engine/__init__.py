"""Where tasks run, and how data moves between them: the only package that imports Ray.

:mod:`~pipeline.engine.executor` runs a list of calls as tasks (on Ray, or in this process for tests and
small jobs) with per-task resources, retries and failures reported together; :mod:`~pipeline.engine.cluster`
connects to a Ray cluster or starts a local one; :mod:`~pipeline.engine.phases` gives a global stage resumable
phases of tasks; :mod:`~pipeline.engine.shuffle` moves rows between phases as partitioned files."""
