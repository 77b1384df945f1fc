"""The tasks training runs are measured on: data sets and functions to minimise.

``get(name)`` builds a task by name (``names()`` lists them); ``accuracy`` scores a
population's outputs on a classification data set.
"""

from ._accuracy import accuracy
from ._dataset import Dataset
from ._functions import FunctionTask
from ._registry import Task, get, names

__all__ = ["Dataset", "FunctionTask", "Task", "accuracy", "get", "names"]
