"""Download a registered model into a folder, for an image that bakes its model in at build time.

    python -m pipeline.serving.fetch models:/mlpath-sentiment@champion /model

reads the registry that ``MLFLOW_TRACKING_URI`` (or MLPATH_HOME) points at, downloads the model's
artifacts and loads them once, so a build fails here, not when the container starts.
"""

from __future__ import annotations

import sys
from pathlib import Path


def fetch_model(uri: str, destination: str | Path) -> Path:
    """The MLflow model at ``uri`` downloaded into ``destination``, checked to load as a SentimentModel."""
    import mlflow.artifacts

    from pipeline.models.sentiment import load_model_folder
    from pipeline.registry import client

    client()  # the tracking/registry URI from the environment or MLPATH_HOME
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    path = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(destination)))
    load_model_folder(path)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pipeline.serving.fetch MODEL_URI FOLDER", file=sys.stderr)
        return 2
    print(fetch_model(args[0], args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
