"""mlpath's library: datasets, from-scratch algorithms, evaluation, validation, registry.

Kept light on import: the CLI imports this package before deciding what else it needs.
"""

__version__ = "0.1.0"
