"""Prefect flows and deployments: a thin orchestration layer over ``pipeline`` stage functions."""
