from jetpack.shared.testing.edge import edge_project, edge_worker

__all__ = ["edge_project", "edge_worker"]
