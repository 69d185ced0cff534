"""Reading a run: its merged statistics (:mod:`~pipeline.report.collect`), the terminal funnel of ``refinery
stats`` (:mod:`~pipeline.report.funnel`), rejected samples and dedup clusters of ``refinery sample``
(:mod:`~pipeline.report.samples`), the HTML report (:mod:`~pipeline.report.html`, charts in
:mod:`~pipeline.report.charts`) and the scaling-law report. Nothing here imports Ray or the filters: a
run's outputs are read as plain files."""
