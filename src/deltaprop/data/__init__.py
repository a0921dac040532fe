"""Datasets (generated, embedded or read from the user's files; no download) and data loading."""
from .files import FileData, load_file
from .datasets import circles, digits, mazur, moons, spirals, train_test_split, xor
from .dataset import ConcatDataset, Dataset, Subset, random_split
from .loader import DataLoader, TensorDataset
from .mnist import load_mnist
from .sampler import DistributedSampler

__all__ = ["xor", "mazur", "moons", "circles", "spirals", "digits", "load_mnist", "load_file", "FileData",
           "train_test_split", "TensorDataset", "DataLoader", "Dataset", "Subset", "ConcatDataset", "random_split",
           "DistributedSampler"]
