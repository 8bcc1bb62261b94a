"""capx: does a character-level captioning RNN beat a word-level one, and at what cost?

The captioner is pure NumPy (the CS231n assignment-3 model); tokenizers, cells, datasets and
update rules plug in by name through the registries in :mod:`capx.registry`.
"""

__version__ = "0.1.0"
