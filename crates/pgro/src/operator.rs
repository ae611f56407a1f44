//! The operator (behaviour R, S, O). Decisions are pure functions of observed state, `now` and configuration
//! (no clock, no client, no environment), so they are unit- and property-tested and replayable after a
//! crash; the controllers around them read the world, call them and perform what they decide.
//!
//! * [`controllers::replica`] and [`controllers::restore`] — the two reconcilers, each with a pure `plan`.
//! * [`specs`] — pure builders of every object pgro creates.
//! * [`schedule`], [`trigger`], [`queue`], [`snapshots`], [`sizing`], [`naming`], [`phase`] — decisions.
//! * [`repos`] — in-process snapshot discovery with a shared per-repository cache.
//! * [`run`] — `pgro operator`: HTTP endpoints, live settings, leader election, controllers.

pub mod admin_sql;
pub mod caches;
pub mod certificates;
pub mod conditions;
pub mod context;
pub mod controllers;
pub mod duration;
pub mod error;
pub mod http;
pub mod k8s;
pub mod kopia_secret;
pub mod leader;
pub mod metrics;
pub mod naming;
pub mod notify;
pub mod phase;
pub mod quantity;
pub mod queue;
pub mod queue_watch;
pub mod replica_metrics;
pub mod repos;
pub mod run;
pub mod schedule;
pub mod settings;
pub mod sizing;
pub mod snapshots;
pub mod specs;
#[cfg(test)]
pub mod testing;
pub mod trigger;
pub mod verify;
