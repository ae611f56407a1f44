//! Admission rules (behaviour A3) as CEL `x-kubernetes-validations`, so `kubectl apply` rejects bad input with
//! a readable message. The patterns are RE2 (CEL `matches`) and also valid for the `regex` crate, so the
//! operator's own parsers can be tested against exactly the language the apiserver admits.
//!
//! Every string a rule scans, and every list whose items carry rules, has a `maxLength`/`maxItems` in the
//! types: without one the apiserver's cost estimate assumes the whole request size and refuses the CRD.

use kube::core::{Message, Rule};

/// A duration: `0`, or one or more `<number><unit>` terms (`5m`, `1h 30m`, `1h30m`, `90s`, `1.5h`).
/// Units: `ns us ms s m h d w` and their long forms (`sec`, `minutes`, `hours`, `days`, …). Calendar units
/// (months, years) are not accepted: their length is ambiguous. The operator parses these with the
/// `humantime` crate, which accepts a superset of this language.
pub const DURATION_PATTERN: &str = r"^(0|\s*([0-9]+(\.[0-9]+)?\s*(ns|nsec|us|usec|ms|msec|millis|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|wk|wks|week|weeks)\s*)+)$";

/// A valid unquoted PostgreSQL identifier (lowercase, at most 63 bytes).
pub const IDENTIFIER_PATTERN: &str = "^[a-z_][a-z0-9_]{0,62}$";

/// A pgBackRest stanza as pgro admits it. pgBackRest itself takes almost any string, but the stanza becomes
/// a path component (`archive/<stanza>/`, `backup/<stanza>/`) and an INI section name, so pgro keeps to
/// characters that are safe in both; the first character rules out `.` and `..`.
pub const STANZA_PATTERN: &str = "^[A-Za-z0-9_][A-Za-z0-9._-]*$";

/// Role names PostgreSQL reserves or pgro uses itself; the analytics role may not take them.
pub const RESERVED_ROLE_NAMES: &[&str] = &[
    "public",
    "none",
    "current_user",
    "current_role",
    "session_user",
    "postgres",
    "pgro_admin",
];

/// Schema names that cannot be persistent schemas (system schemas and pgro's own metadata schema).
pub const RESERVED_SCHEMA_NAMES: &[&str] = &["information_schema", "_pgro"];

fn cel_string_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

pub(crate) fn duration(field: &str) -> Rule {
    Rule::new(format!("self.matches(r'{DURATION_PATTERN}')")).message(Message::Message(format!(
        "{field} must be a duration such as 90s, 5m, 1h 30m or 2d (units: ns, us, ms, s, m, h, d, w)"
    )))
}

/// Quantities are `x-kubernetes-int-or-string`; `string(self)` turns a bare integer into its decimal form.
pub(crate) fn quantity(field: &str) -> Rule {
    Rule::new("isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))")
        .message(Message::Message(format!(
            "{field} must be a positive quantity such as 500Mi, 20Gi or 2Ti"
        )))
}

pub(crate) fn role_name_pattern(field: &str) -> Rule {
    Rule::new(format!("self.matches('{IDENTIFIER_PATTERN}')")).message(Message::Message(format!(
        "{field} must be a valid unquoted PostgreSQL identifier: lowercase letters, digits and _, starting \
         with a letter or _, at most 63 characters"
    )))
}

pub(crate) fn role_name_not_reserved(field: &str) -> Rule {
    Rule::new(format!(
        "!self.startsWith('pg_') && !(self in {})",
        cel_string_list(RESERVED_ROLE_NAMES)
    ))
    .message(Message::Message(format!(
        "{field} must not start with pg_ or be one of {}",
        RESERVED_ROLE_NAMES.join(", ")
    )))
}

pub(crate) fn schema_names() -> Rule {
    Rule::new(format!(
        "self.all(s, s.matches('{IDENTIFIER_PATTERN}') && !s.startsWith('pg_') && !(s in {}))",
        cel_string_list(RESERVED_SCHEMA_NAMES)
    ))
    .message(Message::Message(format!(
        "persistentSchemas entries must be valid unquoted PostgreSQL identifiers (lowercase letters, digits \
         and _, at most 63 characters), must not start with pg_ and must not be {}",
        RESERVED_SCHEMA_NAMES.join(" or ")
    )))
}

pub(crate) fn override_within_maximum() -> Rule {
    Rule::new(
        "!has(self.storageSizeOverride) || !isQuantity(string(self.storageSizeOverride)) || \
         !isQuantity(string(self.storageSizeMaximum)) || \
         quantity(string(self.storageSizeOverride)).compareTo(quantity(string(self.storageSizeMaximum))) <= 0",
    )
    .message("storageSizeOverride must not exceed storageSizeMaximum")
}

pub(crate) fn secret_ref_name(field: &str) -> Rule {
    Rule::new("has(self.name) && size(self.name) > 0")
        .message(Message::Message(format!("{field}.name is required")))
}

/// `kopiaSecretRef` is the seed's field and stays; `source` is the general form. Both at once would leave
/// the operator guessing which the user meant.
pub(crate) fn kopia_secret_ref_or_source() -> Rule {
    Rule::new("has(self.kopiaSecretRef) != has(self.source)").message(
        "set exactly one of kopiaSecretRef or source: they are alternative ways to name the backup source \
         (source.kopia.secretRef is the same as kopiaSecretRef)",
    )
}

/// Exactly one of the object's optional `members` is present.
fn exactly_one(members: &[&str], message: String) -> Rule {
    let count: Vec<String> = members
        .iter()
        .map(|m| format!("(has(self.{m}) ? 1 : 0)"))
        .collect();
    Rule::new(format!("{} == 1", count.join(" + "))).message(Message::Message(message))
}

pub(crate) fn one_source_member() -> Rule {
    let members = ["kopia", "pgbackrest", "barmanCloud", "restic"];
    exactly_one(
        &members,
        format!("source must set exactly one of {}", members.join(", ")),
    )
}

pub(crate) fn one_pgbackrest_storage() -> Rule {
    let members = ["s3", "gcs", "azure", "volume"];
    exactly_one(
        &members,
        format!(
            "source.pgbackrest must set exactly one storage: {}",
            members.join(", ")
        ),
    )
}

pub(crate) fn one_barman_credentials() -> Rule {
    let members = ["s3Credentials", "azureCredentials", "googleCredentials"];
    let count: Vec<String> = members
        .iter()
        .map(|m| format!("(has(self.{m}) ? 1 : 0)"))
        .collect();
    Rule::new(format!("{} <= 1", count.join(" + "))).message(Message::Message(format!(
        "source.barmanCloud sets at most one of {}",
        members.join(", ")
    )))
}

/// What barman-cloud accepts as a destination: `s3://`, `gs://`, or an Azure container URL.
pub(crate) fn destination_path() -> Rule {
    Rule::new(r"self.matches(r'^(s3|gs)://[^/]+') || self.matches(r'^https?://[^/]+/[^/]+')").message(
        "source.barmanCloud.destinationPath must be s3://<bucket>[/<path>], gs://<bucket>[/<path>] or an \
         Azure container URL https://<account>.blob.core.windows.net/<container>[/<path>], as in the Cluster",
    )
}

/// The server name becomes one path component of every key.
pub(crate) fn server_name() -> Rule {
    Rule::new(format!("self.matches('{STANZA_PATTERN}')")).message(
        "source.barmanCloud.serverName must be letters, digits, _, - and ., starting with a letter, digit or _ \
         (one directory name; CNPG's default is the Cluster's name)",
    )
}

pub(crate) fn endpoint_url() -> Rule {
    Rule::new("isURL(self) && self.matches('^(?i)https?://[^/?#]+')").message(
        "source.barmanCloud.endpointURL must be an http:// or https:// URL with a host, e.g. \
         http://minio.minio.svc:9000",
    )
}

/// restic's URL forms pgro reads: S3 (with or without a scheme), GCS and Azure.
pub(crate) fn restic_repository() -> Rule {
    Rule::new(r"self.matches(r'^s3:(https?://)?[^/]+/[^/]+') || self.matches(r'^(gs|azure):[^:/]+:/')").message(
        "source.restic.repository must be a restic repository URL: s3:https://<host>/<bucket>/<path>, \
         s3:<host>/<bucket>/<path>, gs:<bucket>:/<path> or azure:<container>:/<path> (local, sftp, rest, b2 \
         and rclone repositories are not read)",
    )
}

/// A path inside a snapshot: no `..`, not empty.
pub(crate) fn restic_file_name() -> Rule {
    Rule::new(r"!self.matches(r'(^|/)\.\.(/|$)') && self.matches(r'[^/]')")
        .message("source.restic.fileName must be a path inside the snapshot without .. segments, e.g. dumpfile.sql")
}

pub(crate) fn stanza() -> Rule {
    Rule::new(format!("self.matches('{STANZA_PATTERN}')")).message(
        "source.pgbackrest.stanza must be letters, digits, _, - and ., starting with a letter, digit or _",
    )
}

/// pgBackRest refuses a relative `repoN-path`; `..` would leave the repository (or the mounted volume).
pub(crate) fn absolute_path(field: &str) -> Rule {
    Rule::new(r"self.startsWith('/') && !self.matches(r'(^|/)\.\.(/|$)')").message(
        Message::Message(format!(
            "{field} must be an absolute path (starting with /) without .. segments"
        )),
    )
}

pub(crate) fn relative_path(field: &str) -> Rule {
    Rule::new(r"!self.startsWith('/') && !self.matches(r'(^|/)\.\.(/|$)')").message(
        Message::Message(format!(
            "{field} must be a relative path without .. segments"
        )),
    )
}

/// A DNS label (RFC 1123): lowercase letters, digits and `-`, starting and ending with a letter or digit.
pub(crate) fn dns_label(field: &str) -> Rule {
    Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message(Message::Message(format!(
        "{field} must be a DNS label: lowercase letters, digits and -, starting and ending with a letter or \
         digit (e.g. orders-present)"
    )))
}

pub(crate) fn http_url() -> Rule {
    // The scheme is case-insensitive (RFC 3986); a host is required (`http://` alone is no target).
    Rule::new("isURL(self) && self.matches('^(?i)https?://[^/?#]+')")
        .message("url must be an absolute http:// or https:// URL with a host, e.g. https://hooks.example.com/pgro")
}

pub(crate) fn graphql_fields() -> Rule {
    Rule::new(
        "self.target != 'graphQL' || (has(self.mutation) && size(self.mutation) > 0 && \
         has(self.variablesTemplate) && size(self.variablesTemplate) > 0)",
    )
    .message("a graphQL notification requires mutation and variablesTemplate")
}

pub(crate) fn webhook_only_fields() -> Rule {
    Rule::new("self.target != 'webhook' || (!has(self.mutation) && !has(self.variablesTemplate))")
        .message("mutation and variablesTemplate are only valid for target graphQL")
}

pub(crate) fn graphql_method() -> Rule {
    Rule::new("self.target != 'graphQL' || !has(self.method) || self.method == 'POST'")
        .message("a graphQL notification is always sent with method POST")
}

pub(crate) fn immutable(what: &str) -> Rule {
    Rule::new("self == oldSelf").message(Message::Message(format!("{what} is immutable")))
}
