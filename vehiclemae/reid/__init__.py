"""Vehicle Re-ID benchmarks: ranking metrics, the VehicleID protocol, re-ranking, fine-tuning, plots and reports.

Modules: ``metrics`` (evaluate_rank, distances), ``vehicleid`` (10-trial protocol), ``reranking`` (k-reciprocal),
``finetune`` (model, losses, loops, clustering), ``config`` (the typed run config), ``runner`` (the run loop),
``evaluate`` (splits, metrics of a model), ``checkpoints`` (save, resume, load a model), ``tracking``, ``plots``,
``report``. Nothing is imported here, so importing one module does not pull in the others' dependencies.
"""
