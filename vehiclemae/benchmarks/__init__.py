"""Vehicle Re-ID benchmarks: ranking metrics, the VehicleID protocol, re-ranking, fine-tuning and plots.

Only :mod:`vehiclemae.benchmarks.metrics` and :mod:`vehiclemae.benchmarks.reranking` are imported eagerly-cheap
(numpy/torch); the training engine and plots import their heavy dependencies inside functions.
"""
