"""Data: read a split once, cut a stratified validation set, keep it resident as tensors.

Public names: :class:`DataSpec` (stored with a study), :func:`load_search_data` (train/val
only), :func:`load_test_data` (the held-out split, refused in search workers), the batch
augmentations in :data:`AUGMENTS`, and the dataset registry :data:`SOURCES`.
"""

from hpsearch.data._augment import AUGMENTS
from hpsearch.data._resident import (
    DataSpec,
    SearchData,
    Tensors,
    check_available,
    default_data_root,
    forbid_test_split,
    load_search_data,
    load_test_data,
)
from hpsearch.data._sources import SOURCES, DatasetInfo, get_source
from hpsearch.data._split import stratified_split

__all__ = [
    "AUGMENTS", "SOURCES", "DataSpec", "DatasetInfo", "SearchData", "Tensors", "check_available",
    "default_data_root", "forbid_test_split", "get_source", "load_search_data", "load_test_data",
    "stratified_split",
]
