"""Torch models as populations of K independent networks, and weight initialisation schemes."""

from models.init import Explicit, Haykin, Uniform, Xavier, scheme
from models.mlp import MLP, Perceptron
from models.module_population import ModulePopulation
from models.point import Point

__all__ = ["MLP", "Explicit", "Haykin", "ModulePopulation", "Perceptron", "Point", "Uniform",
           "Xavier", "scheme"]
