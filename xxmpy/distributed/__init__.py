"""Past one machine (issue #22): the likelihood of a nested design as a sum over shards
of whole top-level units, each shard compiled and kept where it is evaluated.

shards.py      the split: top-level units (with everything below them) into shards
likelihood.py  -2 log L and its gradient summed over the shards, in this process or
               on a dask.distributed Client's workers
partitions.py  tables as Dask DataFrames: shards built on the workers from partitions
               hashed on the top level's ID, a skeleton on the client, the fit's result
"""
from .likelihood import ShardedLikelihood
from .partitions import PartitionedModel, ShardedFitResult
from .shards import shard_models

__all__ = ["PartitionedModel", "ShardedFitResult", "ShardedLikelihood", "shard_models"]
