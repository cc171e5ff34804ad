//! Many hosts on one etcd cluster (docs/FLEET.md, docs/ROLLOUT.md), in one test binary of their own:
//! the tests share one real three-member cluster, kill its members and run one at a time
//! (`common::etcd::one_at_a_time`), so nothing else runs beside them.

mod common;

mod fleet;
mod fleet_rollouts;
