"""Command groups of the ``diffveri`` CLI (see ``pipeline.cli``)."""
