"""Pictures of a data root, drawn from its manifests: what each stage made, at a glance.

- :func:`identity_grids` — one PNG per identity after synthesis: its synthesized images in rows by view, with the
  subject photos beside them (``ROOT/reports/identities/<identity>.png``; the synthesize stage writes them).
- :func:`filter_report` — the filter's reject reasons and the detector-confidence histogram with the review band
  marked (``ROOT/reports/filter.png``), to choose ``review.uncertain_low/high``.
- :func:`stats_charts` — the assembled dataset's views, images per identity, sources and resolutions
  (``ROOT/reports/stats/*.png``, beside ``stats.md``).

Every function returns what it plotted (counts, bins, ids), so tests check the figure's data, not only a file.
``diffveri report grids|filter|stats ROOT`` draws them on demand. Matplotlib draws on its Agg canvas through
``Figure`` objects (never ``pyplot``), so shards running in threads do not share a global figure state.
"""

from .filter_report import FilterReport, filter_report, report_bands
from .gallery import markdown_gallery
from .identity_grid import IdentityGrid, Tile, identity_grids
from .stats_charts import StatsCharts, stats_charts

__all__ = [
    "FilterReport",
    "IdentityGrid",
    "StatsCharts",
    "Tile",
    "filter_report",
    "identity_grids",
    "markdown_gallery",
    "report_bands",
    "stats_charts",
]
