"""Reading a run: its merged statistics (:mod:`~pipeline.report.collect`), the terminal funnel of ``refinery
stats`` (:mod:`~pipeline.report.funnel`), rejected samples and dedup clusters of ``refinery sample``
(:mod:`~pipeline.report.samples`), the HTML report (:mod:`~pipeline.report.html`; charts in
:mod:`~pipeline.report.charts` with axes and ticks in :mod:`~pipeline.report.axes`, shared page parts in
:mod:`~pipeline.report.page`, the comparison of two runs in :mod:`~pipeline.report.compare`, the training
section in :mod:`~pipeline.report.training`), and the sweep and scaling-law reports. Nothing here imports
Ray or the filters: a run's outputs are read as plain files."""
