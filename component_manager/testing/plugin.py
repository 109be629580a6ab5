"""pytest plugin (entry point ``component_manager``): fixtures for component tests.

Registered through the ``pytest11`` entry point, so installing the package is enough.
"""
