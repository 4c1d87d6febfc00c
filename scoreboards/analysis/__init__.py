"""Analysis: what a sweep's results show.

- :mod:`~scoreboards.analysis.stats`: statistics over seeds (Student-t CIs, IQM, probability of
  improvement) and over learning curves (trajectories to a target, area under the curve);
- :mod:`~scoreboards.analysis.plots`: the figures of a report;
- :mod:`~scoreboards.analysis.report`: ``neg bench report``, tables and figures as ``report.md``;
- :mod:`~scoreboards.analysis.horizon_fit`: horizon scaling, the censored (Tobit) fits of
  trajectories to target against the horizon, with bootstrap CIs;
- :mod:`~scoreboards.analysis.horizon_report`: that analysis as Markdown and a figure.

Nothing is imported here: import the module you need.
"""
