//! Leader election through a `coordination.k8s.io/v1` Lease (behaviour O3): only the holder reconciles, so
//! two operator replicas can run. The decision is a pure function of the Lease and the clock; the loop
//! around it reads and writes the Lease with its `resourceVersion`, so two candidates cannot both win.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use super::k8s::{is_conflict, is_not_found};

/// What to do with the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No Lease yet: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it over.
    Take,
    /// Someone else holds a valid Lease: look again later.
    Wait,
}

/// Decides from the Lease (if any), who we are and the time.
#[must_use]
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseDecision {
    let Some(spec) = spec else {
        return LeaseDecision::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(h) if h == me => LeaseDecision::Renew,
        None | Some("") => LeaseDecision::Take,
        Some(_) => {
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            let renewed = spec.renew_time.as_ref().map(|t| t.0);
            match renewed.and_then(|r| {
                r.checked_add(jiff::SignedDuration::from_secs(duration))
                    .ok()
            }) {
                Some(expiry) if now < expiry => LeaseDecision::Wait,
                _ => LeaseDecision::Take,
            }
        }
    }
}

/// A candidate for the Lease.
#[derive(Debug, Clone)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl Elector {
    /// A candidate `identity` for Lease `name` (in the API's namespace).
    #[must_use]
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
        }
    }

    fn spec(&self, acquired: Option<MicroTime>, transitions: i32, now: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One attempt: returns whether we hold the Lease afterwards.
    ///
    /// # Errors
    ///
    /// API errors other than conflicts (a conflict means someone else wrote first: not leader).
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = match self.api.get(&self.name).await {
            Ok(l) => Some(l),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(e),
        };
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        let result = match (decision, current) {
            (LeaseDecision::Wait, _) => return Ok(false),
            (LeaseDecision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(None, 0, now)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (LeaseDecision::Renew, Some(mut lease)) => {
                let old = lease.spec.clone().unwrap_or_default();
                lease.spec =
                    Some(self.spec(old.acquire_time, old.lease_transitions.unwrap_or(0), now));
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
            (LeaseDecision::Take, Some(mut lease)) => {
                let old = lease.spec.clone().unwrap_or_default();
                lease.spec = Some(self.spec(None, old.lease_transitions.unwrap_or(0) + 1, now));
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until we hold the Lease.
    pub async fn acquire(&self) {
        let mut logged = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.identity, lease = %self.name, "leader election won");
                    return;
                }
                Ok(false) => {
                    if !logged {
                        tracing::info!(identity = %self.identity, lease = %self.name, "another instance leads; standing by");
                        logged = true;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the leader Lease failed"),
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews until a renewal fails for longer than the Lease lasts; then returns (leadership lost).
    pub async fn hold(&self) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(identity = %self.identity, "the leader Lease was taken over");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "renewing the leader Lease failed"),
            }
            // Stop before another candidate may consider the Lease expired.
            if last_ok.elapsed() > self.duration * 2 / 3 {
                tracing::error!(identity = %self.identity, "could not renew the leader Lease in time");
                return;
            }
        }
    }

    /// Gives the Lease up so a standby takes over at once (on shutdown).
    pub async fn release(&self) {
        if let Ok(mut lease) = self.api.get(&self.name).await
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
            }
            match self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => tracing::info!(identity = %self.identity, "leader Lease released"),
                Err(e) => tracing::warn!(error = %e, "releasing the leader Lease failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn held_by(who: &str, renewed: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(who.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn lease_decisions() {
        let now = at("2026-11-21T10:00:00Z");
        assert_eq!(decide(None, "a", now), LeaseDecision::Create);
        let fresh = held_by("b", "2026-11-21T09:59:50Z");
        assert_eq!(decide(Some(&fresh), "a", now), LeaseDecision::Wait);
        assert_eq!(decide(Some(&fresh), "b", now), LeaseDecision::Renew);
        let stale = held_by("b", "2026-11-21T09:59:40Z");
        assert_eq!(decide(Some(&stale), "a", now), LeaseDecision::Take);
        let released = LeaseSpec {
            holder_identity: None,
            ..fresh
        };
        assert_eq!(decide(Some(&released), "a", now), LeaseDecision::Take);
    }
}
