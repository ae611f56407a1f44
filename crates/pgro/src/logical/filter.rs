//! The dump as psql receives it: pgro reads every line on its way (barman-restic-format.md B4) to
//!
//! * drop production password hashes (`PASSWORD '…'` of `CREATE ROLE` / `ALTER ROLE`): a copy for
//!   analytics never holds them;
//! * put tablespaces inside the restore's volume: `CREATE TABLESPACE … LOCATION '<source path>'` gets a
//!   directory of the volume, and a `SET default_tablespace = x` naming a tablespace the dump never creates
//!   (a `pg_dump` of one database) creates it there first, so tables stay in their tablespace;
//! * for a single-database dump (`pg_dump`, which carries no roles), create each role it names as an owner
//!   or grantee first — `NOLOGIN`, no password — so ownership and grants replay as in production instead of
//!   failing with "role does not exist";
//! * pass on only the psql meta-commands pg_dump writes (`\\connect`, `\\restrict`, `\\unrestrict`): any
//!   other (`\\!`, `\\o`, `\\copy … to`, `\\i`, …) could run a program or write outside the volume, so it is
//!   cut from its line and reported as a failed statement — the protection `\\restrict` gives new dumps,
//!   for every dump;
//! * count the statements sent.
//!
//! Lines keep their numbers (a rewrite stays on its line), so psql's `<stdin>:N` in an error is the dump's
//! line N. It is a lexer, not a parser: quotes (`'…'`, `E'…'`, `"…"`, `$tag$…$tag$`), comments and COPY
//! data are tracked so a `;` or a `PASSWORD` inside them is never taken for SQL. Rewrites apply only to a
//! statement that starts and ends on one line, as pg_dumpall writes role and tablespace statements.

/// A directory the caller must create (empty, owned by PostgreSQL's user) before passing the line on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTablespace {
    /// The tablespace's name as written in the dump.
    pub name: String,
    /// Its directory inside the volume.
    pub dir: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lex {
    Normal,
    /// `'…'`; `true` for `E'…'` (backslash escapes).
    Single(bool),
    Double,
    Dollar(Vec<u8>),
    /// `/* … */`, nesting depth.
    Block(u32),
}

/// The running filter of one dump.
#[derive(Debug)]
pub struct Filter {
    lex: Lex,
    in_copy: bool,
    /// No token of the current statement seen yet.
    at_start: bool,
    tablespace_root: String,
    tablespaces: Vec<String>,
    /// Create the roles the dump names (`Some`, with those created so far) — a single-database dump.
    roles: Option<Vec<String>>,
    /// Statements sent (COPY data rows and psql meta-commands not counted).
    pub statements: u64,
    /// Password clauses removed.
    pub passwords_removed: u64,
    /// Meta-commands refused: (line number, the command's first word).
    pub refused: Vec<(u64, String)>,
    /// Lines seen.
    line_no: u64,
}

impl Filter {
    /// A filter placing tablespaces in `<tablespace_root>/<n>`; with `create_roles`, creating the roles
    /// a single-database dump names.
    #[must_use]
    pub fn new(tablespace_root: &str, create_roles: bool) -> Self {
        Self {
            lex: Lex::Normal,
            in_copy: false,
            at_start: true,
            tablespace_root: tablespace_root.trim_end_matches('/').to_owned(),
            tablespaces: Vec::new(),
            roles: create_roles.then(Vec::new),
            statements: 0,
            passwords_removed: 0,
            refused: Vec::new(),
            line_no: 0,
        }
    }

    /// Filters one line (with its `\n`, if any) into `out`; a tablespace directory to create first, if
    /// the line needs one.
    pub fn line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Option<NewTablespace> {
        self.line_no += 1;
        if self.in_copy {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            if body.strip_suffix(b"\r").unwrap_or(body) == b"\\." {
                self.in_copy = false;
            }
            out.extend_from_slice(line);
            return None;
        }
        let starts_statement = self.lex == Lex::Normal && self.at_start;
        // Byte for char (Latin-1): lossless for any encoding a dump is in, and every pattern is ASCII.
        let text: String = line.iter().map(|&b| char::from(b)).collect();
        let trimmed = text.trim_start();
        if starts_statement && trimmed.starts_with('\\') {
            // A psql meta-command on a line of its own.
            let at = line.len() - trimmed.len();
            self.meta_command(line, at, out);
            return None;
        }
        let mut created = None;
        let mut extra_statements = 0;
        let rewritten: Option<String> = if starts_statement && one_statement(trimmed) {
            let upper: String = trimmed
                .chars()
                .take(40)
                .collect::<String>()
                .to_ascii_uppercase();
            if upper.starts_with("ALTER ROLE ") || upper.starts_with("CREATE ROLE ") {
                strip_password(&text).inspect(|_| self.passwords_removed += 1)
            } else if upper.starts_with("CREATE TABLESPACE ") {
                self.relocate(&text).map(|(line, t)| {
                    created = Some(t);
                    line
                })
            } else if upper.starts_with("SET DEFAULT_TABLESPACE = ") {
                self.create_missing(trimmed).map(|(stmt, t)| {
                    created = Some(t);
                    extra_statements = 1;
                    format!("{stmt} {text}")
                })
            } else if let Some(created) = self.roles.as_mut() {
                let new: Vec<String> = role_names(trimmed)
                    .into_iter()
                    .filter(|r| !created.contains(r))
                    .collect();
                created.extend(new.iter().cloned());
                extra_statements = new.len() as u64;
                (!new.is_empty()).then(|| {
                    let mut pre: String = new.iter().map(|r| create_role(r)).collect();
                    pre.push_str(&text);
                    pre
                })
            } else {
                None
            }
        } else {
            None
        };
        let rewritten: Option<Vec<u8>> = rewritten.map(|r| r.chars().map(byte_of).collect());
        let bytes = rewritten.as_deref().unwrap_or(line);
        let before = self.statements;
        let meta = self.lex_line(bytes);
        self.statements -= extra_statements.min(self.statements - before);
        if let Some(at) = meta {
            // psql takes a backslash outside quotes anywhere in a line for a meta-command.
            self.meta_command(bytes, at, out);
            return created;
        }
        if starts_statement
            && self.at_start
            && self.lex == Lex::Normal
            && is_copy_from_stdin(trimmed)
        {
            self.in_copy = true;
        }
        out.extend_from_slice(bytes);
        created
    }

    /// `CREATE TABLESPACE name … LOCATION '<path>'` with the path replaced by a directory of the volume.
    fn relocate(&mut self, line: &str) -> Option<(String, NewTablespace)> {
        let start = line.find("CREATE TABLESPACE ")? + "CREATE TABLESPACE ".len();
        let (name, _) = identifier(&line[start..])?;
        let loc = find_outside_quotes(line, " LOCATION '")?;
        let lit_start = loc + " LOCATION ".len();
        let lit_len = quoted_literal_len(&line[lit_start..])?;
        let t = self.next_tablespace(&name);
        let mut out = String::with_capacity(line.len());
        out.push_str(&line[..lit_start]);
        out.push_str(&quote_literal(&t.dir));
        out.push_str(&line[lit_start + lit_len..]);
        Some((out, t))
    }

    /// For `SET default_tablespace = x;` naming a tablespace this dump did not create: the statement that
    /// creates it in the volume.
    fn create_missing(&mut self, stmt: &str) -> Option<(String, NewTablespace)> {
        let value = stmt["SET default_tablespace = ".len()..]
            .trim_end()
            .strip_suffix(';')?
            .trim();
        if value.is_empty() || value == "''" {
            return None;
        }
        let (name, rest) = identifier(value)?;
        if !rest.trim().is_empty() || self.tablespaces.contains(&name) {
            return None;
        }
        let t = self.next_tablespace(&name);
        let stmt = format!(
            "CREATE TABLESPACE {} LOCATION {};",
            quote_ident(&name),
            quote_literal(&t.dir)
        );
        Some((stmt, t))
    }

    fn next_tablespace(&mut self, name: &str) -> NewTablespace {
        self.tablespaces.push(name.to_owned());
        NewTablespace {
            name: name.to_owned(),
            dir: format!("{}/{}", self.tablespace_root, self.tablespaces.len()),
        }
    }

    /// Passes `line` on if its meta-command (from byte `at`) is one pg_dump writes; otherwise only what
    /// comes before it, and the refusal is recorded.
    fn meta_command(&mut self, line: &[u8], at: usize, out: &mut Vec<u8>) {
        let cmd: String = String::from_utf8_lossy(&line[at..])
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or_default()
            .chars()
            .take(40)
            .collect();
        if matches!(
            cmd.as_str(),
            "\\connect" | "\\c" | "\\restrict" | "\\unrestrict"
        ) {
            out.extend_from_slice(line);
            return;
        }
        self.refused.push((self.line_no, cmd));
        out.extend_from_slice(&line[..at]);
        out.push(b'\n');
    }

    /// Advances the lexer over one line, counting the statements it ends; the offset of a backslash
    /// outside quotes and comments (a psql meta-command), where lexing stops.
    fn lex_line(&mut self, b: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let next = b.get(i + 1).copied();
            match &mut self.lex {
                Lex::Normal => match c {
                    b'-' if next == Some(b'-') => return None,
                    b'/' if next == Some(b'*') => {
                        self.lex = Lex::Block(1);
                        i += 1;
                    }
                    b'\'' => {
                        self.at_start = false;
                        let e = i > 0
                            && matches!(b[i - 1], b'E' | b'e')
                            && (i < 2 || !is_ident(b[i - 2]));
                        self.lex = Lex::Single(e);
                    }
                    b'"' => {
                        self.at_start = false;
                        self.lex = Lex::Double;
                    }
                    b'$' if i == 0 || !is_ident(b[i - 1]) => {
                        self.at_start = false;
                        if let Some(len) = dollar_tag(&b[i..]) {
                            self.lex = Lex::Dollar(b[i..i + len].to_vec());
                            i += len - 1;
                        }
                    }
                    b';' => {
                        self.statements += 1;
                        self.at_start = true;
                    }
                    b'\\' => return Some(i),
                    c if c.is_ascii_whitespace() => {}
                    _ => self.at_start = false,
                },
                Lex::Single(escapes) => {
                    if *escapes && c == b'\\' {
                        i += 1;
                    } else if c == b'\'' {
                        self.lex = Lex::Normal;
                    }
                }
                Lex::Double => {
                    if c == b'"' {
                        self.lex = Lex::Normal;
                    }
                }
                Lex::Dollar(tag) => {
                    if c == b'$' && b[i..].starts_with(tag) {
                        i += tag.len() - 1;
                        self.lex = Lex::Normal;
                    }
                }
                Lex::Block(depth) => {
                    if c == b'*' && next == Some(b'/') {
                        *depth -= 1;
                        i += 1;
                        if *depth == 0 {
                            self.lex = Lex::Normal;
                        }
                    } else if c == b'/' && next == Some(b'*') {
                        *depth += 1;
                        i += 1;
                    }
                }
            }
            i += 1;
        }
        None
    }
}

/// The byte a char of the Latin-1 view stands for (anything pgro adds is ASCII).
fn byte_of(c: char) -> u8 {
    u8::try_from(u32::from(c)).unwrap_or(b'?')
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// The length of a dollar-quote opener at the start of `b` (`$$`, `$tag$`), if it is one.
fn dollar_tag(b: &[u8]) -> Option<usize> {
    let end = b[1..].iter().position(|&c| c == b'$')? + 1;
    let tag = &b[1..end];
    let ok = tag.is_empty() || (!tag[0].is_ascii_digit() && tag.iter().all(|&c| is_ident(c)));
    ok.then_some(end + 1)
}

/// The statement is one line that ends with `;` (ignoring a trailing comment-free newline).
fn one_statement(trimmed: &str) -> bool {
    trimmed.trim_end().ends_with(';')
}

/// pg_dump's `COPY … FROM stdin;` line.
fn is_copy_from_stdin(trimmed: &str) -> bool {
    trimmed.starts_with("COPY ") && trimmed.trim_end().ends_with("FROM stdin;")
}

/// An identifier at the start of `s` (quoted with `""` escapes, or plain) and what follows it.
fn identifier(s: &str) -> Option<(String, &str)> {
    if let Some(rest) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if rest[i + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &rest[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(s.len());
        (end > 0).then(|| (s[..end].to_owned(), &s[end..]))
    }
}

/// The byte offset of `needle` in `s` outside `'…'` and `"…"`.
fn find_outside_quotes(s: &str, needle: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut quote = None;
    for i in 0..b.len() {
        match quote {
            Some(q) if b[i] == q => quote = None,
            Some(_) => {}
            None if s[i..].starts_with(needle) => return Some(i),
            None if b[i] == b'\'' || b[i] == b'"' => quote = Some(b[i]),
            None => {}
        }
    }
    None
}

/// The length of the `'…'` literal (with `''` escapes) at the start of `s`.
fn quoted_literal_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.first() != Some(&b'\'') {
        return None;
    }
    let mut i = 1;
    while i < b.len() {
        if b[i] == b'\'' {
            if b.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// The line without its `PASSWORD '…'` clause (and the space before it); `None` when it has none.
fn strip_password(line: &str) -> Option<String> {
    // The space before it makes it the keyword, not the tail of a longer word; outside quotes, not a
    // role name or a `VALID UNTIL` value.
    let at = find_outside_quotes(line, " PASSWORD '")?;
    let lit = at + " PASSWORD ".len();
    let len = quoted_literal_len(&line[lit..])?;
    let mut out = String::with_capacity(line.len());
    out.push_str(&line[..at]);
    out.push_str(&line[lit + len..]);
    Some(out)
}

/// The roles a statement names as owner or grantee: `… OWNER TO r;`, `GRANT … TO r[, …];`,
/// `REVOKE … FROM r[, …];`, `ALTER DEFAULT PRIVILEGES FOR ROLE r …` (`PUBLIC` and the `CURRENT_*` forms
/// are not roles).
fn role_names(stmt: &str) -> Vec<String> {
    let body = stmt.trim_end().trim_end_matches(';');
    let list = |s: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = s.trim_start();
        while let Some((name, after)) = identifier(rest) {
            let quoted = rest.starts_with('"');
            let upper = name.to_ascii_uppercase();
            let special = !quoted
                && matches!(
                    upper.as_str(),
                    "PUBLIC" | "CURRENT_USER" | "SESSION_USER" | "CURRENT_ROLE" | "GROUP"
                );
            if !special {
                out.push(name);
            }
            match after.trim_start().strip_prefix(',') {
                Some(more) => rest = more.trim_start(),
                None => break,
            }
        }
        out
    };
    let upper = body.to_ascii_uppercase();
    if let Some(at) = find_outside_quotes(body, " OWNER TO ") {
        return list(&body[at + " OWNER TO ".len()..]);
    }
    if upper.starts_with("GRANT ") {
        return find_outside_quotes(body, " TO ")
            .map(|at| list(&body[at + " TO ".len()..]))
            .unwrap_or_default();
    }
    if upper.starts_with("REVOKE ") {
        return find_outside_quotes(body, " FROM ")
            .map(|at| list(&body[at + " FROM ".len()..]))
            .unwrap_or_default();
    }
    if upper.starts_with("ALTER DEFAULT PRIVILEGES FOR ROLE ") {
        return list(&body["ALTER DEFAULT PRIVILEGES FOR ROLE ".len()..]);
    }
    Vec::new()
}

/// A statement creating role `r` without login or password unless it exists.
fn create_role(r: &str) -> String {
    format!(
        "DO $pgro$ BEGIN CREATE ROLE {} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $pgro$; ",
        quote_ident(r)
    )
}

/// `'…'` with quotes doubled.
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An identifier, quoted when it is not a plain lower-case name.
fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests;
