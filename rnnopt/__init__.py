"""rnnopt: the recurrent-architecture study of Jozefowicz, Zaremba & Sutskever (2015) as Optuna
studies: cells, tasks, a trainer, studies on shared SQL storage, reports and architecture search.
"""

from rnnopt.errors import ConfigError, DataError, RnnoptError, StorageError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "RnnoptError", "StorageError", "__version__"]
