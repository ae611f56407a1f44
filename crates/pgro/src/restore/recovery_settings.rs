//! Recovery settings a restored WAL-archive backup starts with (pgbackrest-format.md §6.6, PostgreSQL ≥ 12):
//! earlier `recovery_target*` lines of `postgresql.auto.conf` commented out, then a block appended, and
//! `recovery.signal` created. The builder is pure; [`write`] applies it.

use std::path::Path;

use crate::source::open::SourceArgs;

/// Where recovery stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecoveryTarget {
    /// Replay every archived WAL, then promote.
    Latest,
    /// Stop as soon as the backup is consistent, then promote.
    Consistent,
    /// No recovery settings (an offline backup, consistent as it is).
    #[value(skip)]
    None,
}

/// Settings pgBackRest itself comments out before adding its own.
const RECOVERY_KEYS: &[&str] = &[
    "recovery_target",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_timeline",
    "recovery_target_xid",
    "restore_command",
    "archive_mode",
    "archive_command",
];

/// Only these characters go into `restore_command` (a shell command inside a quoted setting): no quoting
/// rules to get wrong.
fn plain(p: &str) -> bool {
    !p.is_empty()
        && p.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"/._-+".contains(&c))
}

/// `restore_command` for `exe wal-fetch` with `source`.
///
/// # Errors
/// A path holds characters other than letters, digits and `/._-+`.
pub fn restore_command(exe: &Path, source: &SourceArgs) -> Result<String, String> {
    let mut parts = vec![
        exe.display().to_string(),
        "wal-fetch".into(),
        "--source".into(),
    ];
    parts.push(source.source.display().to_string());
    if let Some(d) = &source.secret_dir {
        parts.push("--secret-dir".into());
        parts.push(d.display().to_string());
    }
    for p in parts
        .iter()
        .filter(|p| !p.starts_with("--") && p.as_str() != "wal-fetch")
    {
        if !plain(p) {
            return Err(format!(
                "{p:?} cannot go into restore_command: use a path of letters, digits and /._-+ only"
            ));
        }
    }
    parts.extend(["%f".into(), "\"%p\"".into()]);
    Ok(parts.join(" "))
}

/// `auto_conf` with earlier recovery lines commented out and the new block appended.
#[must_use]
pub fn auto_conf(auto_conf: &str, target: RecoveryTarget, restore_command: &str) -> String {
    let mut out = String::new();
    for line in auto_conf.lines() {
        let key = line
            .trim_start()
            .split(['=', ' ', '\t'])
            .next()
            .unwrap_or("");
        if RECOVERY_KEYS.contains(&key) {
            out.push_str("# Removed by pgro restore # ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("# Recovery settings written by pgro restore\n");
    out.push_str("archive_mode = 'off'\n");
    if target != RecoveryTarget::None {
        out.push_str(&format!(
            "restore_command = '{}'\n",
            restore_command.replace('\'', "''")
        ));
        out.push_str("recovery_target_action = 'promote'\n");
    }
    if target == RecoveryTarget::Consistent {
        out.push_str("recovery_target = 'immediate'\nrecovery_target_timeline = 'current'\n");
    }
    out
}

/// Rewrites `postgresql.auto.conf` and creates `recovery.signal` (unless `target` is `None`).
///
/// # Errors
/// A path cannot go into `restore_command`, or a file cannot be written.
pub fn write(
    pgdata: &Path,
    target: RecoveryTarget,
    exe: &Path,
    source: &SourceArgs,
) -> Result<(), String> {
    let command = restore_command(exe, source)?;
    let path = pgdata.join("postgresql.auto.conf");
    let old = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    std::fs::write(&path, auto_conf(&old, target, &command))
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    if target != RecoveryTarget::None {
        std::fs::write(pgdata.join("recovery.signal"), "")
            .map_err(|e| format!("writing recovery.signal: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SourceArgs {
        SourceArgs {
            source: "/etc/pgro/source.yaml".into(),
            secret_dir: Some("/etc/pgro/secret".into()),
            storage_attempts: 10,
        }
    }

    #[test]
    fn latest_replays_and_promotes_and_old_settings_are_commented_out() {
        let cmd = restore_command(Path::new("/pgro/bin/pgro"), &source()).expect("command");
        assert_eq!(
            cmd,
            "/pgro/bin/pgro wal-fetch --source /etc/pgro/source.yaml --secret-dir /etc/pgro/secret %f \"%p\""
        );
        let conf = auto_conf(
            "work_mem = '4MB'\nrecovery_target_time = 'x'\n archive_command='pgbackrest'\n",
            RecoveryTarget::Latest,
            &cmd,
        );
        assert!(conf.starts_with("work_mem = '4MB'\n# Removed by pgro restore # recovery_target_time = 'x'\n# Removed by pgro restore #  archive_command"), "{conf}");
        assert!(conf.contains("restore_command = '/pgro/bin/pgro wal-fetch"));
        assert!(conf.contains("recovery_target_action = 'promote'\n"));
        assert!(conf.contains("archive_mode = 'off'\n"));
        assert!(!conf.contains("recovery_target = 'immediate'"));
    }

    #[test]
    fn consistent_stops_at_the_backup_end_and_none_only_turns_archiving_off() {
        let c = auto_conf("", RecoveryTarget::Consistent, "x");
        assert!(
            c.contains("recovery_target = 'immediate'\n")
                && c.contains("recovery_target_timeline = 'current'")
        );
        let n = auto_conf("", RecoveryTarget::None, "x");
        assert!(!n.contains("restore_command") && n.contains("archive_mode = 'off'"));
    }

    #[test]
    fn paths_needing_quotes_are_refused() {
        let s = SourceArgs {
            source: "/a b/source.yaml".into(),
            secret_dir: None,
            storage_attempts: 10,
        };
        assert!(
            restore_command(Path::new("/pgro"), &s)
                .expect_err("space")
                .contains("letters, digits")
        );
        let s = SourceArgs {
            source: "/a'b".into(),
            secret_dir: None,
            storage_attempts: 10,
        };
        assert!(restore_command(Path::new("/pgro"), &s).is_err());
    }
}
