"""Example plugins that live outside the ``capx`` package and load by module name.

List one under ``plugins:`` in the config (``plugins: [plugins.gru]``) or call
``capx.registry.load_plugins(["plugins.gru"])``; importing the module registers what it defines.
"""
