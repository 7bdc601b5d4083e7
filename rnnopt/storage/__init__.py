"""rnnopt's storage layer: the one way to name, open, lock and read an Optuna database.

- :mod:`~rnnopt.storage.urls`: parse, normalise, mask and scrub storage URLs; ``--storage-env``;
- :mod:`~rnnopt.storage.rdb`: open for writing or reading, study lock, heartbeat, stale trials;
- :mod:`~rnnopt.storage.artifacts`: the checkpoint store;
- :mod:`~rnnopt.storage.views`: rnnopt's SQL views (``python -m rnnopt.db``);
- :mod:`~rnnopt.storage.compat`: the only code that touches Optuna's private API.
"""

from rnnopt.storage.artifacts import (
    artifact_store,
    check_artifact_dir,
    default_artifact_dir,
    existing_artifact_store,
)
from rnnopt.storage.rdb import (
    Heartbeat,
    check_url,
    existing_storage,
    fail_stale_trials,
    open_existing,
    open_storage,
    replaced_numbers,
    requeue,
    study_lock,
)
from rnnopt.storage.urls import (
    DEFAULT_URL,
    add_storage_arguments,
    backend_of,
    mask_url,
    normalize_url,
    scrub,
    sqlite_path,
    storage_url,
)
from rnnopt.storage.views import install_views, install_views_quietly

__all__ = [
    "DEFAULT_URL",
    "Heartbeat",
    "add_storage_arguments",
    "artifact_store",
    "backend_of",
    "check_artifact_dir",
    "check_url",
    "default_artifact_dir",
    "existing_artifact_store",
    "existing_storage",
    "fail_stale_trials",
    "install_views",
    "install_views_quietly",
    "mask_url",
    "normalize_url",
    "open_existing",
    "open_storage",
    "replaced_numbers",
    "requeue",
    "scrub",
    "sqlite_path",
    "storage_url",
    "study_lock",
]
