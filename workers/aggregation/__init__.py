"""When a replica's gradient reaches the coordinator: one module per
`aggregation.strategy` (dense, local_sgd, lag_wk, lag_ps, lasg_wk2), each a small
frozen State dataclass plus pure functions, and `common` for the shared pieces
(the skip test, the RHS window, staleness forcing, the stale-gradient store).
Pure PyTorch; Replica and Coordinator in workers.training call these."""
