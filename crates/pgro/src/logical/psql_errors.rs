//! psql's standard error during a replay, sorted: `psql:<stdin>:N: ERROR:  …` is a failed statement
//! (its `DETAIL`/`HINT`/`LINE` lines follow without the prefix), except the conflicts a fresh cluster
//! always has with a cluster dump (its bootstrap superuser, a role created twice), which are tolerated.
//! A failed `\connect` or a lost connection means later statements ran in the wrong database or not at
//! all: fatal, whatever `failOnErrors` says.

/// How many failures are kept verbatim.
pub const KEEP: usize = 10;
/// Longest kept message.
const MAX_MESSAGE: usize = 400;

/// What psql reported so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Errors {
    /// Statements that failed (tolerated ones not counted).
    pub failed: u64,
    /// Expected conflicts with the fresh cluster.
    pub tolerated: u64,
    /// The first failures: `line N: message`.
    pub first: Vec<String>,
    /// Why the replay cannot be trusted at all, if it cannot.
    pub fatal: Option<String>,
}

impl Errors {
    /// Takes one line of psql's standard error.
    pub fn line(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("psql:") else {
            return;
        };
        // `<stdin>:N: LEVEL:  message` (the file name has no colon: it is always `<stdin>` here).
        let mut parts = rest.splitn(3, ':');
        let (_file, n, msg) = match (parts.next(), parts.next(), parts.next()) {
            (Some(f), Some(n), Some(m)) if n.trim().parse::<u64>().is_ok() => {
                (f, n.trim(), m.trim())
            }
            _ => ("", "?", rest.trim()),
        };
        let (level, text) = msg.split_once(':').unwrap_or(("", msg));
        let text = text.trim();
        let fatal = level == "FATAL"
            || level == "PANIC"
            || text.starts_with("\\connect")
            || text.contains("connection to server")
            || text.contains("server closed the connection");
        let failed = fatal || level == "ERROR" || level == "error";
        if !failed {
            return;
        }
        if !fatal && is_expected_conflict(text) {
            self.tolerated += 1;
            return;
        }
        self.failed += 1;
        let entry = format!("line {n}: {}", crate::restore::truncate(text, MAX_MESSAGE));
        if fatal && self.fatal.is_none() {
            self.fatal = Some(entry.clone());
        }
        if self.first.len() < KEEP {
            self.first.push(entry);
        }
    }
}

/// `role "x" already exists`: the bootstrap superuser (and any role the image creates) meets the dump's
/// `CREATE ROLE`; the dump's next line (`ALTER ROLE … WITH …`) sets its attributes anyway.
fn is_expected_conflict(text: &str) -> bool {
    text.starts_with("role \"") && text.ends_with("\" already exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_conflicts_tolerated_and_connection_losses_fatal() {
        let mut e = Errors::default();
        for l in [
            "psql:<stdin>:18: ERROR:  role \"postgres\" already exists",
            "psql:<stdin>:40: ERROR:  relation \"t\" does not exist",
            "LINE 1: SELECT * FROM t;",
            "psql:<stdin>:41: NOTICE:  extension \"x\" already exists, skipping",
            "psql:<stdin>:42: WARNING:  no privileges were granted",
            "psql:<stdin>:50: error: invalid command \\restrict",
        ] {
            e.line(l);
        }
        assert_eq!((e.failed, e.tolerated), (2, 1));
        assert_eq!(e.first[0], "line 40: relation \"t\" does not exist");
        assert_eq!(e.first[1], "line 50: invalid command \\restrict");
        assert_eq!(e.fatal, None);
        e.line("psql:<stdin>:109: error: \\connect: connection to server on socket \"/tmp/x/.s.PGSQL.5432\" failed: FATAL:  database \"demo\" does not exist");
        assert!(
            e.fatal
                .as_deref()
                .is_some_and(|f| f.starts_with("line 109: \\connect"))
        );
        assert_eq!(e.failed, 3);
    }

    #[test]
    fn only_the_first_failures_are_kept() {
        let mut e = Errors::default();
        for n in 0..100 {
            e.line(&format!("psql:<stdin>:{n}: ERROR:  boom {n}"));
        }
        assert_eq!(e.failed, 100);
        assert_eq!(e.first.len(), KEEP);
        assert_eq!(
            e.first[KEEP - 1],
            format!("line {}: boom {}", KEEP - 1, KEEP - 1)
        );
    }
}
