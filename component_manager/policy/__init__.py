"""Governing policies: they watch the model and register actions, nothing more.

    budget    --max-running / --memory-budget: make room for a start by evicting running
              instances of lower priority, or refuse it (ResourceExhausted)
"""
