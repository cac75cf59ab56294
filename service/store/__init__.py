"""The SQL store, one module per resource (no re-exports; import from the module):

- models: the tables, the six job statuses (CHECK constraint), sweep and trial
  statuses, json_safe
- db: engines, sessions, transaction(), ping
- lifecycle: `transition`, the only writer of jobs.status and job_events (submit and
  claim included); the transition table; lease_holder for fenced writes
- queue_order: the claim order, written once: the claim's candidate and explain's ranking
- jobs: enqueue, read, list, status history, cancel requests, fail queued jobs
- attempts: claim, heartbeat, finish / fail / acknowledge cancel, requeue expired leases
- metrics: fenced append and reads; checkpoints: fenced record and reads
- datasets, users (users and tokens), dispatchers (registry and resource view)
- explain: why a queued job waits; migrate: Alembic's command API
- sweeps: submit, read, cancel, the sweep status writer; sweep_steps: a sweep
  controller's fenced step (lease, observe, decisions, submit, settle);
  sweep_trials: a trial's result and intermediate values from its job

Store functions take the session first and everything else by keyword; they flush
and never commit: the route or the dispatcher owns the transaction.
"""
