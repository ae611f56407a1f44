//! `pg_hba.conf`: replaced on every start. Local (Unix socket) connections are trusted: the socket lives in
//! a directory only the PostgreSQL OS user can enter, so in practice that is the instance manager alone.
//! TCP is closed while the instance is being prepared and opened (scram-sha-256 only) once roles are in
//! place, by rewriting this file and reloading. With TLS configured, TCP admits only TLS connections
//! (`hostssl`); plain-text ones are rejected by an explicit line, so the refusal says why.

/// Which connections the file admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Only the instance manager, over the private socket.
    ManagerOnly,
    /// Plus password (scram-sha-256) logins over TCP: over TLS only when `tls`.
    Serving {
        /// Whether the server has a certificate (then plain-text TCP is rejected).
        tls: bool,
    },
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
        Access::Serving { tls: false } => out.push_str(
            "host    all          all   0.0.0.0/0  scram-sha-256\n\
             host    all          all   ::/0       scram-sha-256\n",
        ),
        Access::Serving { tls: true } => out.push_str(
            "hostssl    all       all   0.0.0.0/0  scram-sha-256\n\
             hostssl    all       all   ::/0       scram-sha-256\n\
             hostnossl  all       all   0.0.0.0/0  reject\n\
             hostnossl  all       all   ::/0       reject\n",
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
        for tls in [false, true] {
            let serving = render(Access::Serving { tls });
            for line in serving.lines().filter(|l| l.starts_with("host")) {
                assert!(
                    line.ends_with("scram-sha-256") || line.ends_with("reject"),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn with_tls_tcp_admits_only_tls() {
        let s = render(Access::Serving { tls: true });
        let admitting: Vec<&str> = s
            .lines()
            .filter(|l| l.starts_with("host") && l.ends_with("scram-sha-256"))
            .collect();
        assert_eq!(admitting.len(), 2);
        assert!(admitting.iter().all(|l| l.starts_with("hostssl ")));
        assert_eq!(
            s.lines()
                .filter(|l| l.starts_with("hostnossl") && l.ends_with("reject"))
                .count(),
            2
        );
    }
}
