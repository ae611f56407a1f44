//! The operator. Decisions are pure functions of observed state, `now` and configuration (no clock, no
//! client, no environment), so they are unit- and property-tested here and replayable after a crash; the
//! controllers that perform I/O arrive with the operator issue.

pub mod duration;
pub mod naming;
pub mod phase;
pub mod quantity;
pub mod queue;
pub mod schedule;
pub mod sizing;
pub mod snapshots;
pub mod trigger;
