//! PostgreSQL knowledge shared by the instance manager and the schema migration: identifier quoting and
//! what makes a persistent schema the analytics role's own.

pub mod catalog;
pub mod tls;

/// `"ident"` with embedded quotes doubled.
#[must_use]
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `'literal'` with quotes doubled; `None` for text with a backslash, so the result means the same whatever
/// `standard_conforming_strings` says.
#[must_use]
pub fn quote_literal(s: &str) -> Option<String> {
    (!s.contains('\\')).then(|| format!("'{}'", s.replace('\'', "''")))
}

/// Statements (run as a superuser, in the schema's database) that give `schema` and everything in it to
/// `role` and let it write there (behaviour P1). Tables, views and free-standing sequences change owner;
/// sequences that belong to a column follow their table.
#[must_use]
pub fn own_schema_statements(schema: &str, role: &str) -> Vec<String> {
    let s = quote_ident(schema);
    let r = quote_ident(role);
    // Both names are identifiers the API admits (no quotes or backslashes), so they are safe as literals.
    let schema_lit = quote_literal(schema).unwrap_or_default();
    let role_lit = quote_literal(role).unwrap_or_default();
    vec![
        format!("ALTER SCHEMA {s} OWNER TO {r}"),
        format!(
            "DO $pgro$ DECLARE o record; BEGIN \
             FOR o IN SELECT c.oid::regclass AS obj, c.relkind FROM pg_class c \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname = {schema_lit} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
                 AND pg_get_userbyid(c.relowner) <> {role_lit} \
                 AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d \
                   WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))) \
               ORDER BY c.relkind = 'S' \
             LOOP \
               EXECUTE format('ALTER %s %s OWNER TO %I', CASE o.relkind WHEN 'S' THEN 'SEQUENCE' \
                 WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' \
                 ELSE 'TABLE' END, o.obj, {role_lit}); \
             END LOOP; END $pgro$"
        ),
        format!("GRANT ALL ON SCHEMA {s} TO {r}"),
        format!("GRANT ALL ON ALL TABLES IN SCHEMA {s} TO {r}"),
        format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA {s} TO {r}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's").as_deref(), Some("'it''s'"));
        assert_eq!(quote_literal("a\\b"), None);
    }

    #[test]
    fn own_schema_names_the_schema_and_role_quoted() {
        let s = own_schema_statements("scratch", "analytics");
        assert_eq!(s[0], "ALTER SCHEMA \"scratch\" OWNER TO \"analytics\"");
        assert!(s[1].contains("n.nspname = 'scratch'") && s[1].contains("<> 'analytics'"));
        assert!(
            s.iter()
                .any(|x| x == "GRANT ALL ON ALL TABLES IN SCHEMA \"scratch\" TO \"analytics\"")
        );
    }
}
