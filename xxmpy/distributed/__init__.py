"""Past one machine (issue #22): the likelihood as a sum over shards, each shard
compiled and kept where it is evaluated.

shards.py      a nested design's split: top-level units (with everything below them)
crossed.py     a crossed design's or fixed effects' split: one level's units per shard,
               the other levels shared; the shared remainder added up and factored once
likelihood.py  -2 log L and its gradient summed over the shards, in this process or
               on a dask.distributed Client's workers
partitions.py  tables as Dask DataFrames: shards built on the workers from partitions
               hashed on the top level's ID, a skeleton on the client, the fit's result
"""
from .likelihood import ShardedLikelihood
from .partitions import PartitionedModel, ShardedFitResult
from .shards import shard_models

__all__ = ["PartitionedModel", "ShardedFitResult", "ShardedLikelihood", "shard_models"]
