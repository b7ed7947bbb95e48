"""Command groups of the ``vehiclemae`` CLI (see ``vehiclemae.cli``)."""
