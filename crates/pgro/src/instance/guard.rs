//! The analytics role's self-service guard. `ALTER ROLE <self> PASSWORD …` and `ALTER ROLE <self> [IN
//! DATABASE …] SET …` need no privilege in PostgreSQL, and event triggers do not fire for roles, so no grant
//! can refuse them: a session that switches `default_transaction_read_only` off could lock every other user
//! of the shared credential out, or keep its own defaults. This task compares the role with what pgro made
//! every [`INTERVAL`] and puts it back at once, logging a warning.

use std::time::Duration;

use tokio_postgres::Client;

use super::error::Error;
use super::roles::{self, Fingerprint, RolePlan};

/// How often the role is compared.
pub(crate) const INTERVAL: Duration = Duration::from_millis(500);

/// One comparison: restores the role when it differs from `want`. Returns whether it did.
///
/// # Errors
/// A query or statement failed.
pub(crate) async fn check_once(
    c: &Client,
    want: &Fingerprint,
    plan: &RolePlan,
) -> Result<bool, Error> {
    let now = roles::fingerprint(c, &want.role).await?;
    if &now == want {
        return Ok(false);
    }
    roles::restore(c, want, plan).await?;
    tracing::warn!(
        role = %want.role,
        password_changed = now.verifier != want.verifier,
        settings_changed = now.settings != want.settings,
        "the analytics role changed itself; restored"
    );
    Ok(true)
}

/// Runs until the connection fails (the postmaster stopped); the caller owns the connection's lifetime.
pub(crate) async fn run(c: Client, want: Fingerprint, plan: RolePlan) {
    loop {
        tokio::time::sleep(INTERVAL).await;
        if let Err(e) = check_once(&c, &want, &plan).await {
            if c.is_closed() {
                tracing::debug!(error = %e, "role guard stopped: connection closed");
                return;
            }
            tracing::warn!(error = %e, "role guard check failed");
        }
    }
}
