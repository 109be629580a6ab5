"""LMDB storage: the manager's topology store and the per-instance storage areas."""

from .areas import StorageAreas, open_environment
from .records import InstanceRecord, ProcessRecord
from .topology import Batch, TopologyStore

__all__ = ["Batch", "InstanceRecord", "ProcessRecord", "StorageAreas", "TopologyStore", "open_environment"]
