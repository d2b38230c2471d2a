//! Scaleway fleet: client, status report, reap planner and executor.
