//! Running pgBackRest as the PostgreSQL user: [`PgUser`] plus the binary and its configuration file.

use std::ops::Deref;
use std::path::PathBuf;

use super::STANZA;
use crate::pgrun::PgUser;
pub(super) use crate::pgrun::{Server, free_port};

/// The PostgreSQL user, the pgBackRest binary and its configuration.
#[derive(Debug, Clone)]
pub(super) struct Runner {
    pub(super) pg: PgUser,
    pub(super) pgbackrest: PathBuf,
    pub(super) conf: PathBuf,
}

impl Deref for Runner {
    type Target = PgUser;
    fn deref(&self) -> &PgUser {
        &self.pg
    }
}

impl Runner {
    /// `pgbackrest --config=<conf> --stanza=db <args…>`.
    pub(super) async fn pgbackrest(&self, args: &[&str]) -> anyhow::Result<String> {
        let spec = self
            .spec(&format!("pgbackrest {}", args.join(" ")), &self.pgbackrest)
            .arg(format!("--config={}", self.conf.display()))
            .arg(format!("--stanza={STANZA}"))
            .args(args);
        self.run(spec).await
    }
}
