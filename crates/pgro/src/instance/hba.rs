//! `pg_hba.conf`: replaced on every start. Local (Unix socket) connections are trusted: the socket lives in
//! a directory only the PostgreSQL OS user can enter, so in practice that is the instance manager alone.
//! TCP is closed while the instance is being prepared and opened (scram-sha-256 only) once roles are in
//! place, by rewriting this file and reloading.

/// Which connections the file admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Only the instance manager, over the private socket.
    ManagerOnly,
    /// Plus password (scram-sha-256) logins over TCP.
    Serving,
}

/// The file's text.
pub(crate) fn render(access: Access) -> String {
    let mut out = String::from(
        "# Managed by `pgro instance`; rewritten at every start.\n\
         # TYPE  DATABASE     USER  ADDRESS  METHOD\n\
         local   all          all            trust\n\
         local   replication  all            trust\n",
    );
    match access {
        Access::ManagerOnly => {}
        Access::Serving => out.push_str(
            "host    all          all   0.0.0.0/0  scram-sha-256\n\
             host    all          all   ::/0       scram-sha-256\n",
        ),
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tcp_is_closed_until_serving_and_never_trusted() {
        assert!(!render(Access::ManagerOnly).contains("host "));
        let serving = render(Access::Serving);
        for line in serving.lines().filter(|l| l.starts_with("host")) {
            assert!(line.ends_with("scram-sha-256"), "{line}");
        }
    }
}
