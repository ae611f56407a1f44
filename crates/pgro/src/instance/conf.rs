//! `postgresql.conf`: a parser for PostgreSQL's configuration syntax (quoting, comments, `include`,
//! `include_if_exists`, `include_dir`), the flattening of a source configuration into one ordered list of
//! settings, and the pure renderers of the two files pgro manages.
//!
//! The syntax follows PostgreSQL's `guc-file.l`: `name [=] value`, `#` starts a comment outside quotes,
//! single-quoted strings escape `'` as `''` or `\'` and accept the C escapes `\b \f \n \r \t` and octal,
//! unquoted values run to whitespace or `#`. Names are case-insensitive.

use std::path::{Path, PathBuf};

/// One `name = value` line, value unquoted/unescaped, name lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// A syntax error: file line number (1-based) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub(crate) struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) reason: &'static str,
}

/// Parses one configuration file's text into its entries, in order (directives included as settings
/// named `include`, `include_if_exists`, `include_dir`).
///
/// # Errors
/// A line that is not a comment, blank, or `name [=] value`.
pub(crate) fn parse(text: &str) -> Result<Vec<Setting>, SyntaxError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(s) = parse_line(line).map_err(|reason| SyntaxError {
            line: i + 1,
            reason,
        })? {
            out.push(s);
        }
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Option<Setting>, &'static str> {
    let mut chars = line.char_indices().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    skip_ws(&mut chars);
    match chars.peek() {
        None | Some((_, '#')) => return Ok(None),
        Some(_) => {}
    }
    let start = chars.peek().map_or(0, |(i, _)| *i);
    let mut end = start;
    while let Some((i, c)) = chars.next_if(|(_, c)| c.is_ascii_alphanumeric() || "_.".contains(*c))
    {
        end = i + c.len_utf8();
    }
    if end == start {
        return Err("expected a parameter name");
    }
    let name = line[start..end].to_ascii_lowercase();
    skip_ws(&mut chars);
    if chars.next_if(|(_, c)| *c == '=').is_some() {
        skip_ws(&mut chars);
    }
    let value = match chars.peek() {
        None | Some((_, '#')) => return Err("expected a value"),
        Some((_, '\'')) => {
            chars.next();
            parse_quoted(&mut chars)?
        }
        Some(_) => {
            let mut v = String::new();
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace() && *c != '#') {
                v.push(c);
            }
            v
        }
    };
    skip_ws(&mut chars);
    match chars.peek() {
        None | Some((_, '#')) => Ok(Some(Setting { name, value })),
        Some(_) => Err("unexpected text after the value"),
    }
}

fn parse_quoted(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<String, &'static str> {
    let mut v = String::new();
    loop {
        match chars.next() {
            None => return Err("unterminated quoted string"),
            Some((_, '\'')) => {
                if chars.next_if(|(_, c)| *c == '\'').is_some() {
                    v.push('\'');
                } else {
                    return Ok(v);
                }
            }
            Some((_, '\\')) => match chars.next() {
                None => return Err("unterminated quoted string"),
                Some((_, 'b')) => v.push('\u{8}'),
                Some((_, 'f')) => v.push('\u{c}'),
                Some((_, 'n')) => v.push('\n'),
                Some((_, 'r')) => v.push('\r'),
                Some((_, 't')) => v.push('\t'),
                Some((_, d)) if ('0'..='7').contains(&d) => {
                    let mut n = d.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.next_if(|(_, c)| ('0'..='7').contains(c)) {
                            Some((_, c)) => n = n * 8 + c.to_digit(8).unwrap_or(0),
                            None => break,
                        }
                    }
                    v.push(char::from_u32(n).unwrap_or('?'));
                }
                Some((_, c)) => v.push(c),
            },
            Some((_, c)) => v.push(c),
        }
    }
}

/// Quotes a value for a configuration file (always single-quoted, so any value round-trips).
pub(crate) fn quote(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('\'');
    for c in value.chars() {
        match c {
            '\'' => s.push_str("''"),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s.push('\'');
    s
}

/// Read access to configuration files, so flattening can be tested without a file system.
pub(crate) trait ConfFiles {
    /// The file's text, or `None` when it does not exist.
    ///
    /// # Errors
    /// Any other I/O failure.
    fn read(&self, path: &Path) -> std::io::Result<Option<String>>;
    /// File names in a directory, or `None` when it does not exist.
    ///
    /// # Errors
    /// Any other I/O failure.
    fn list(&self, dir: &Path) -> std::io::Result<Option<Vec<String>>>;
}

/// The real file system.
pub(crate) struct FsConfFiles;

impl ConfFiles for FsConfFiles {
    fn read(&self, path: &Path) -> std::io::Result<Option<String>> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn list(&self, dir: &Path) -> std::io::Result<Option<Vec<String>>> {
        match std::fs::read_dir(dir) {
            Ok(rd) => Ok(Some(
                rd.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect(),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Something worth a log line that flattening tolerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FlattenNote {
    /// `include` of a file that does not exist here (typically a path on the source host).
    MissingInclude(PathBuf),
    /// A file that does not parse; its settings are skipped.
    Syntax { file: PathBuf, error: SyntaxError },
    /// Includes nested deeper than PostgreSQL allows (10).
    TooDeep(PathBuf),
}

/// The settings of `file` with every include expanded in place, in PostgreSQL's order.
///
/// Relative include paths are relative to the including file's directory; `include_dir` reads the
/// directory's `*.conf` files (not starting with `.`) in byte order, as PostgreSQL does.
///
/// # Errors
/// An I/O failure other than a missing file.
pub(crate) fn flatten(
    files: &dyn ConfFiles,
    file: &Path,
    notes: &mut Vec<FlattenNote>,
) -> std::io::Result<Vec<Setting>> {
    let mut out = Vec::new();
    flatten_into(files, file, 0, false, notes, &mut out)?;
    Ok(out)
}

fn flatten_into(
    files: &dyn ConfFiles,
    file: &Path,
    depth: usize,
    if_exists: bool,
    notes: &mut Vec<FlattenNote>,
    out: &mut Vec<Setting>,
) -> std::io::Result<()> {
    if depth > 10 {
        notes.push(FlattenNote::TooDeep(file.to_path_buf()));
        return Ok(());
    }
    let Some(text) = files.read(file)? else {
        if !if_exists && depth > 0 {
            notes.push(FlattenNote::MissingInclude(file.to_path_buf()));
        }
        return Ok(());
    };
    let entries = match parse(&text) {
        Ok(e) => e,
        Err(error) => {
            notes.push(FlattenNote::Syntax {
                file: file.to_path_buf(),
                error,
            });
            return Ok(());
        }
    };
    let dir = file.parent().unwrap_or(Path::new("/"));
    for s in entries {
        match s.name.as_str() {
            "include" | "include_if_exists" => {
                let path = dir.join(&s.value);
                flatten_into(
                    files,
                    &path,
                    depth + 1,
                    s.name == "include_if_exists",
                    notes,
                    out,
                )?;
            }
            "include_dir" => {
                let d = dir.join(&s.value);
                match files.list(&d)? {
                    None => notes.push(FlattenNote::MissingInclude(d)),
                    Some(mut names) => {
                        names.retain(|n| n.ends_with(".conf") && !n.starts_with('.'));
                        names.sort();
                        for n in names {
                            flatten_into(files, &d.join(n), depth + 1, false, notes, out)?;
                        }
                    }
                }
            }
            _ => out.push(s),
        }
    }
    Ok(())
}

/// Why a source setting is left out of the managed configuration.
pub(crate) fn is_forbidden(name: &str) -> bool {
    const EXACT: &[&str] = &[
        // file paths and server identity that belong to the source host
        "data_directory",
        "config_file",
        "hba_file",
        "ident_file",
        "external_pid_file",
        "stats_temp_directory",
        "dynamic_library_path",
        "krb_server_keyfile",
        // connections: ours
        "listen_addresses",
        "port",
        "unix_socket_directories",
        "unix_socket_group",
        "unix_socket_permissions",
        // archiving and recovery: a replica never archives, restores from an archive or follows a primary
        "archive_mode",
        "archive_command",
        "archive_library",
        "restore_command",
        "archive_cleanup_command",
        "recovery_end_command",
        "primary_conninfo",
        "primary_slot_name",
        "promote_trigger_file",
        "trigger_file",
        "standby_mode",
        // would make every commit wait for a standby that does not exist
        "synchronous_standby_names",
        // logging goes to stderr (the container log)
        "logging_collector",
        "log_directory",
        "log_filename",
        "log_destination",
        "log_file_mode",
        "log_rotation_age",
        "log_rotation_size",
        "log_truncate_on_rotation",
        "event_source",
        // locales of the source host may not exist in the image
        "lc_messages",
        "lc_monetary",
        "lc_numeric",
        "lc_time",
        // sized or set by pgro
        "shared_buffers",
        "huge_pages",
        "recovery_init_sync_method",
        "default_transaction_read_only",
    ];
    EXACT.contains(&name)
        || name.starts_with("ssl")
        || name.starts_with("syslog_")
        || name.starts_with("recovery_target")
}

/// Whether a source setting names a file or directory that is not here: its whole value is an absolute
/// path (no spaces: commands are left out by name) that `exists` does not find. Such a setting belongs to
/// the source host (PGO's `/pgdata/…`, CPO's `/home/postgres/pgdata/…`, CNPG's `/controller/…`) and
/// could only make PostgreSQL fail or write where it must not. Preload libraries are kept: a missing
/// library fails the start with a message that names the remedy (`recovery::startup_summary`).
pub(crate) fn is_foreign_path(s: &Setting, exists: &dyn Fn(&Path) -> bool) -> bool {
    let v = s.value.trim();
    v.starts_with('/')
        && !v.contains(char::is_whitespace)
        && !s.name.ends_with("_preload_libraries")
        && !exists(Path::new(v))
}

/// The managed `postgresql.conf`: the source's settings (last occurrence wins, as in PostgreSQL) minus
/// the forbidden ones and those naming a path that does not exist here ([`is_foreign_path`]), then the
/// include of pgro's own file, so ours win over the source's.
pub(crate) fn render_main(
    source: &[Setting],
    pgro_file: &str,
    exists: &dyn Fn(&Path) -> bool,
) -> String {
    let mut kept: Vec<&Setting> = Vec::new();
    let mut removed: Vec<&str> = Vec::new();
    for (i, s) in source.iter().enumerate() {
        let overridden = source[i + 1..].iter().any(|later| later.name == s.name);
        if is_forbidden(&s.name) || is_foreign_path(s, exists) {
            if !overridden {
                removed.push(&s.name);
            }
        } else if !overridden {
            kept.push(s);
        }
    }
    let mut out = String::from(
        "# Managed by `pgro instance`, rewritten at every start from postgresql.conf.source (and the files it\n\
         # includes) and postgresql.auto.conf.source: the source's settings minus those that cannot work on a\n\
         # replica. pgro's own settings and postgresExtraConfig follow in the included file.\n",
    );
    if !removed.is_empty() {
        out.push_str("# Left out: ");
        out.push_str(&removed.join(", "));
        out.push('\n');
    }
    for s in kept {
        out.push_str(&format!("{} = {}\n", s.name, quote(&s.value)));
    }
    out.push_str(&format!("include {}\n", quote(pgro_file)));
    out
}

/// pgro's settings, in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgroSettings {
    pub(crate) listen_addresses: String,
    pub(crate) port: u16,
    pub(crate) socket_dir: PathBuf,
    pub(crate) major: u32,
    pub(crate) shared_buffers_bytes: Option<u64>,
    /// A WAL-archive restore's recovery settings (`archive::plan`), written after postgresExtraConfig
    /// because recovery depends on them; empty otherwise.
    pub(crate) recovery: Vec<(String, String)>,
    /// TLS for client connections (`tls::settings`), written last: postgresExtraConfig cannot turn it off.
    pub(crate) tls: Vec<(String, String)>,
}

/// The `postgresql.pgro.conf` file: pgro's settings, then the user's extra configuration verbatim (last, so
/// the user wins), then the recovery settings of a WAL-archive restore, if any (they replace pgro's own
/// setting of the same name, e.g. `hot_standby`).
pub(crate) fn render_pgro(s: &PgroSettings, extra: Option<&str>) -> String {
    let mut lines: Vec<(String, String)> = vec![
        ("listen_addresses".into(), s.listen_addresses.clone()),
        ("port".into(), s.port.to_string()),
        (
            "unix_socket_directories".into(),
            s.socket_dir.display().to_string(),
        ),
        ("unix_socket_permissions".into(), "0700".into()),
        ("logging_collector".into(), "off".into()),
        ("log_destination".into(), "stderr".into()),
        ("archive_mode".into(), "off".into()),
        ("hot_standby".into(), "on".into()),
    ];
    if let Some(b) = s.shared_buffers_bytes {
        lines.push(("shared_buffers".into(), format!("{}kB", b / 1024)));
    }
    // PostgreSQL >= 14: syncfs() the data directory once instead of fsyncing every file before crash
    // recovery, much faster right after a restore wrote the whole directory.
    if s.major >= 14 {
        lines.push(("recovery_init_sync_method".into(), "syncfs".into()));
    }
    lines.retain(|(k, _)| !s.recovery.iter().any(|(r, _)| r == k));
    let mut out = String::from("# Generated by `pgro instance` at every start; edits are lost.\n");
    for (k, v) in lines {
        out.push_str(&format!("{k} = {}\n", quote(&v)));
    }
    if let Some(extra) = extra.filter(|e| !e.trim().is_empty()) {
        out.push_str("# postgresExtraConfig\n");
        out.push_str(extra);
        if !extra.ends_with('\n') {
            out.push('\n');
        }
    }
    if !s.recovery.is_empty() {
        out.push_str(
            "# Recovery from the source's WAL archive (until promotion; rendered by pgro instance)\n",
        );
        for (k, v) in &s.recovery {
            out.push_str(&format!("{k} = {}\n", quote(v)));
        }
    }
    if !s.tls.is_empty() {
        out.push_str("# TLS for client connections (pgro; pg_hba.conf admits TCP over TLS only)\n");
        for (k, v) in &s.tls {
            out.push_str(&format!("{k} = {}\n", quote(v)));
        }
    }
    out
}

/// The reset `postgresql.auto.conf` (PostgreSQL's own header, no settings).
pub(crate) const AUTO_CONF: &str =
    "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n";

#[cfg(test)]
mod tests;
