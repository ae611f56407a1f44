//! pgBackRest credentials from a Secret, in either form a PGO or CPO user already has: keys named like
//! pgBackRest options (`repo1-s3-key`, `repo1-s3-key-secret`, `repo1-cipher-pass`, …), or a pgBackRest INI
//! file under any key ending in `.conf` (PGO's `s3.conf` with a `[global]` section). Any `repoN-` prefix is
//! accepted; with several, the spec's `repo` picks one, else the lowest.

use std::collections::BTreeMap;

/// What pgro takes from the Secret; everything else about the repository is in the spec.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PgbackrestCredentials {
    /// The `N` of the `repoN-` options used.
    pub repo: u16,
    /// `repoN-s3-key`.
    pub s3_key: Option<String>,
    /// `repoN-s3-key-secret`.
    pub s3_key_secret: Option<String>,
    /// `repoN-s3-token`.
    pub s3_token: Option<String>,
    /// `repoN-gcs-key`: the service account JSON (its contents, not a path).
    pub gcs_key: Option<String>,
    /// `repoN-azure-key`.
    pub azure_key: Option<String>,
    /// `repoN-azure-key-type` (`shared` or `sas`).
    pub azure_key_type: Option<String>,
    /// `repoN-cipher-pass`.
    pub cipher_pass: Option<String>,
}

impl std::fmt::Debug for PgbackrestCredentials {
    // Values are secrets: only which ones are present is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: &Option<String>| o.as_ref().map(|_| "<set>");
        f.debug_struct("PgbackrestCredentials")
            .field("repo", &self.repo)
            .field("s3_key", &set(&self.s3_key))
            .field("s3_key_secret", &set(&self.s3_key_secret))
            .field("s3_token", &set(&self.s3_token))
            .field("gcs_key", &set(&self.gcs_key))
            .field("azure_key", &set(&self.azure_key))
            .field("cipher_pass", &set(&self.cipher_pass))
            .finish()
    }
}

/// The option names read (after `repoN-`).
const OPTIONS: &[&str] = &[
    "s3-key",
    "s3-key-secret",
    "s3-token",
    "gcs-key",
    "azure-key",
    "azure-key-type",
    "cipher-pass",
];

/// Splits `repo12-s3-key` into (12, "s3-key") for the options pgro reads.
fn split_option(key: &str) -> Option<(u16, &str)> {
    let rest = key.strip_prefix("repo")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let n: u16 = rest[..digits].parse().ok()?;
    let opt = rest[digits..].strip_prefix('-')?;
    ((1..=256).contains(&n) && OPTIONS.contains(&opt)).then_some((n, opt))
}

/// `key=value` lines of a pgBackRest configuration file, every section (`[global]`, `[<stanza>]`,
/// `[global:restore]` …) alike; `#` comments and blank lines skipped, spaces around `=` trimmed.
fn ini_options(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Reads the credentials from the Secret's keys (`files`: key → value). `repo` picks `repoN-`.
///
/// # Errors
/// Nothing in the Secret looks like pgBackRest options, the chosen `repoN-` has none, or a value is not
/// UTF-8. Messages name keys, never values.
pub fn credentials(
    files: &BTreeMap<String, Vec<u8>>,
    repo: Option<u16>,
) -> Result<PgbackrestCredentials, String> {
    let mut options: Vec<(String, String, String)> = Vec::new(); // (option key, value, where)
    for (name, value) in files {
        let text = || {
            String::from_utf8(value.clone())
                .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|_| format!("Secret key {name} is not UTF-8 text"))
        };
        if name.ends_with(".conf") {
            for (k, v) in ini_options(&text()?) {
                options.push((k, v, format!("{name} (configuration file)")));
            }
        } else if split_option(name).is_some() {
            options.push((name.clone(), text()?, format!("key {name}")));
        }
    }
    let mut indices: Vec<u16> = options
        .iter()
        .filter_map(|(k, _, _)| split_option(k).map(|(n, _)| n))
        .collect();
    indices.sort_unstable();
    indices.dedup();
    let chosen = match (repo, indices.first()) {
        (Some(r), _) if indices.contains(&r) => r,
        (Some(r), _) => {
            return Err(format!(
                "the Secret has no repo{r}- options (it has {}); set spec.source.pgbackrest.repo to one of them",
                describe(&indices)
            ));
        }
        (None, Some(&first)) => first,
        (None, None) => {
            return Err(
                "the Secret holds no pgBackRest options: expected keys such as repo1-s3-key, \
                 repo1-s3-key-secret, repo1-cipher-pass, or a pgBackRest configuration file under a key \
                 ending in .conf (as PGO's s3.conf)"
                    .into(),
            );
        }
    };
    let mut c = PgbackrestCredentials {
        repo: chosen,
        ..PgbackrestCredentials::default()
    };
    for (k, v, _) in options {
        let Some((n, opt)) = split_option(&k) else {
            continue;
        };
        if n != chosen {
            continue;
        }
        let slot = match opt {
            "s3-key" => &mut c.s3_key,
            "s3-key-secret" => &mut c.s3_key_secret,
            "s3-token" => &mut c.s3_token,
            "gcs-key" => &mut c.gcs_key,
            "azure-key" => &mut c.azure_key,
            "azure-key-type" => &mut c.azure_key_type,
            _ => &mut c.cipher_pass,
        };
        *slot = Some(v);
    }
    Ok(c)
}

fn describe(indices: &[u16]) -> String {
    if indices.is_empty() {
        "none".into()
    } else {
        indices
            .iter()
            .map(|n| format!("repo{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests;
