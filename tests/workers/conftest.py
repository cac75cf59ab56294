from tests.ray_cluster import ray_address

__all__ = ["ray_address"]
