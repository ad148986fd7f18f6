"""One Prefect flow per unit; a flow only wires tasks."""

from pipeline.settings import configure_environment

# Prefect reads PREFECT_HOME and its settings when first imported: point it at MLPATH_HOME first.
configure_environment()
