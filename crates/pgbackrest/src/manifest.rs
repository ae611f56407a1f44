//! `backup/<stanza>/<label>/backup.manifest` (pgbackrest-format.md §3): what a backup holds and where each
//! file's bytes are, decoded from a verified [`Ini`]. Every name is checked here, once: a repository cannot
//! make a restore write outside its target.

use serde::Deserialize;

use crate::codec::Compress;
use crate::info::BackupType;
use crate::ini::Ini;

/// SHA-1 of nothing: the checksum of a zero-length file, which manifests omit.
pub const EMPTY_SHA1: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";

/// `[backup:db]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDb {
    /// `[db:history]` id (archive id `<version>-<id>`).
    pub id: u32,
    /// PostgreSQL system identifier.
    pub system_id: u64,
    /// PostgreSQL version (`"16"`).
    pub version: String,
    /// Catalog version (names tablespace directories `PG_<version>_<catalog>`).
    pub catalog_version: u64,
}

/// A tablespace of the backup (`[backup:target]` of type link under `pg_tblspc/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tablespace {
    /// Its OID (`pg_tblspc/<oid>`).
    pub oid: u32,
    /// Its name.
    pub name: Option<String>,
    /// Where it was on the source.
    pub source_path: String,
}

/// Where a block-incremental file's map is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIncr {
    /// Block size in bytes (`bi` × 8192).
    pub block_size: u64,
    /// Bytes of each block checksum (`bic`, default 6).
    pub checksum_size: u64,
    /// Stored length of the map (`bim`), the last bytes of the file's stored data.
    pub map_size: u64,
}

/// One `[target:file]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Manifest name (`pg_data/base/1/1247`, `pg_tblspc/16384/PG_16_…/…`).
    pub name: String,
    /// Bytes to restore.
    pub size: u64,
    /// SHA-1 (hex) of the restored bytes.
    pub checksum: String,
    /// Label of the backup whose storage holds the bytes.
    pub reference: String,
    /// Stored bytes (slice length in a bundle).
    pub repo_size: u64,
    /// `(bundle id, offset)` when bundled.
    pub bundle: Option<(u64, u64)>,
    /// Block-incremental storage.
    pub block: Option<BlockIncr>,
    /// Mode bits (`0640`).
    pub mode: u32,
    /// Modification time, Unix seconds.
    pub timestamp: i64,
}

/// A directory of `[target:path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPath {
    /// Manifest name (`pg_data/base`).
    pub name: String,
    /// Mode bits.
    pub mode: u32,
}

/// A backup manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// This backup's label.
    pub label: String,
    /// Full, diff or incr.
    pub kind: BackupType,
    /// Every label of the chain, this one last (block maps index into it).
    pub references: Vec<String>,
    /// Start, Unix seconds.
    pub timestamp_start: i64,
    /// Stop, Unix seconds.
    pub timestamp_stop: i64,
    /// First WAL segment needed for consistency.
    pub archive_start: Option<String>,
    /// Last WAL segment needed for consistency.
    pub archive_stop: Option<String>,
    /// Whether the backup was taken online.
    pub online: bool,
    /// Compression of every file of the set.
    pub compress: Compress,
    /// Bundled files use raw framing.
    pub bundle_raw: bool,
    /// Sub-passphrase of the backup's data files.
    pub cipher_pass: Option<String>,
    /// `[backup:db]`.
    pub db: ManifestDb,
    /// Tablespaces, by OID.
    pub tablespaces: Vec<Tablespace>,
    /// Files.
    pub files: Vec<ManifestFile>,
    /// Directories.
    pub paths: Vec<ManifestPath>,
    /// pgBackRest version that wrote the manifest.
    pub writer_version: String,
}

#[derive(Deserialize)]
struct FileJson {
    bi: Option<u64>,
    bic: Option<u64>,
    bim: Option<u64>,
    bni: Option<u64>,
    bno: Option<u64>,
    checksum: Option<String>,
    mode: Option<String>,
    reference: Option<String>,
    #[serde(rename = "repo-size")]
    repo_size: Option<u64>,
    size: u64,
    #[serde(default)]
    timestamp: i64,
}

#[derive(Deserialize)]
struct ModeJson {
    mode: Option<String>,
}

#[derive(Deserialize)]
struct TargetJson {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "tablespace-id")]
    tablespace_id: Option<String>,
    #[serde(rename = "tablespace-name")]
    tablespace_name: Option<String>,
}

fn mode(s: Option<&str>, default: u32, what: &str) -> Result<u32, String> {
    match s {
        None => Ok(default),
        Some(m) => u32::from_str_radix(m, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| format!("{what}: mode {m:?} is not octal")),
    }
}

/// Checks a manifest name: `pg_data`, `pg_data/…` or `pg_tblspc/<oid>/…`, no empty, `.` or `..` part.
fn check_name(name: &str) -> Result<(), String> {
    let mut parts = name.split('/');
    let ok = match parts.next() {
        Some("pg_data") => true,
        Some("pg_tblspc") => match parts.next() {
            None => true,
            Some(oid) => oid.parse::<u32>().is_ok(),
        },
        _ => false,
    } && name
        .split('/')
        .all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains('\0'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a pg_data/ or pg_tblspc/<oid>/ name"
        ))
    }
}

/// Decodes a verified manifest.
///
/// # Errors
/// A required key is missing, a value has the wrong type, or a name could escape the target.
pub(crate) fn parse(ini: &Ini) -> Result<Manifest, String> {
    let label: String = ini
        .get_json("backup", "backup-label")?
        .ok_or("no backup-label")?;
    if !crate::label::is_label(&label) {
        return Err(format!("backup-label {label:?} is not a label"));
    }
    let kind: String = ini
        .get_json("backup", "backup-type")?
        .ok_or("no backup-type")?;
    let compress = match ini.get_json::<String>("backup:option", "option-compress-type")? {
        Some(t) => Compress::from_type(&t).ok_or_else(|| format!("compress type {t:?}"))?,
        None if ini
            .get_json::<bool>("backup:option", "option-compress")?
            .unwrap_or(false) =>
        {
            Compress::Gz
        }
        None => Compress::None,
    };
    let file_default = mode(
        ini.get_json::<String>("target:file:default", "mode")?
            .as_deref(),
        0o600,
        "[target:file:default]",
    )?;
    let path_default = mode(
        ini.get_json::<String>("target:path:default", "mode")?
            .as_deref(),
        0o700,
        "[target:path:default]",
    )?;

    let mut files = Vec::new();
    let mut referenced: Vec<String> = Vec::new();
    for (name, v) in ini.section("target:file") {
        check_name(name)?;
        let f: FileJson = serde_json::from_str(v).map_err(|e| format!("{name}: {e}"))?;
        let reference = f.reference.unwrap_or_else(|| label.clone());
        if !crate::label::is_label(&reference) {
            return Err(format!("{name}: reference {reference:?} is not a label"));
        }
        if reference != label && !referenced.contains(&reference) {
            referenced.push(reference.clone());
        }
        let block = match (f.bi, f.bim) {
            (Some(bi), Some(bim)) if bi > 0 => Some(BlockIncr {
                block_size: bi * 8192,
                checksum_size: f.bic.unwrap_or(6),
                map_size: bim,
            }),
            _ => None,
        };
        let checksum = match f.checksum {
            Some(c) if crate::label::is_sha1(&c) => c,
            Some(c) => return Err(format!("{name}: checksum {c:?}")),
            None if f.size == 0 => EMPTY_SHA1.to_owned(),
            None => return Err(format!("{name}: no checksum")),
        };
        files.push(ManifestFile {
            name: name.to_owned(),
            size: f.size,
            checksum,
            reference,
            repo_size: f.repo_size.unwrap_or(f.size),
            bundle: f.bni.map(|id| (id, f.bno.unwrap_or(0))),
            block,
            mode: mode(f.mode.as_deref(), file_default, name)?,
            timestamp: f.timestamp,
        });
    }

    let mut paths = Vec::new();
    for (name, v) in ini.section("target:path") {
        check_name(name)?;
        let m: ModeJson = serde_json::from_str(v).map_err(|e| format!("{name}: {e}"))?;
        paths.push(ManifestPath {
            name: name.to_owned(),
            mode: mode(m.mode.as_deref(), path_default, name)?,
        });
    }

    let mut tablespaces = Vec::new();
    for (name, v) in ini.section("backup:target") {
        let t: TargetJson = serde_json::from_str(v).map_err(|e| format!("{name}: {e}"))?;
        if let Some(oid) = name.strip_prefix("pg_tblspc/") {
            let oid: u32 = oid
                .parse()
                .map_err(|_| format!("[backup:target] {name:?}: not pg_tblspc/<oid>"))?;
            if t.kind != "link" || t.tablespace_id.as_deref() != Some(&oid.to_string()) {
                return Err(format!("[backup:target] {name}: not a tablespace link"));
            }
            tablespaces.push(Tablespace {
                oid,
                name: t.tablespace_name,
                source_path: t.path,
            });
        }
    }

    // Before 2.42 the chain is not listed: rebuild it from the files' references, this backup last.
    let references = match ini.get_json::<String>("backup", "backup-reference")? {
        Some(list) => list.split(',').map(str::to_owned).collect(),
        None => {
            referenced.sort();
            referenced.push(label.clone());
            referenced
        }
    };
    if references.last() != Some(&label) || !references.iter().all(|r| crate::label::is_label(r)) {
        return Err(format!(
            "backup-reference {references:?} does not end with {label}"
        ));
    }

    Ok(Manifest {
        kind: BackupType::parse(&kind).ok_or_else(|| format!("backup type {kind:?}"))?,
        references,
        timestamp_start: ini
            .get_json("backup", "backup-timestamp-start")?
            .unwrap_or(0),
        timestamp_stop: ini
            .get_json("backup", "backup-timestamp-stop")?
            .unwrap_or(0),
        archive_start: ini.get_json("backup", "backup-archive-start")?,
        archive_stop: ini.get_json("backup", "backup-archive-stop")?,
        online: ini
            .get_json("backup:option", "option-online")?
            .unwrap_or(true),
        compress,
        bundle_raw: ini
            .get_json("backup", "backup-bundle-raw")?
            .unwrap_or(false),
        cipher_pass: ini.get_json("cipher", "cipher-pass")?,
        db: ManifestDb {
            id: ini
                .get_json("backup:db", "db-id")?
                .ok_or("no [backup:db] db-id")?,
            system_id: ini
                .get_json("backup:db", "db-system-id")?
                .ok_or("no [backup:db] db-system-id")?,
            version: ini
                .get_json("backup:db", "db-version")?
                .ok_or("no [backup:db] db-version")?,
            catalog_version: ini
                .get_json("backup:db", "db-catalog-version")?
                .unwrap_or(0),
        },
        tablespaces,
        files,
        paths,
        writer_version: ini
            .get_json("backrest", "backrest-version")?
            .unwrap_or_default(),
        label,
    })
}

impl Manifest {
    /// Whether the set uses block incremental written by pgBackRest 2.45, whose beta map format changed
    /// in 2.46.
    #[must_use]
    pub fn has_beta_block_incremental(&self) -> bool {
        self.writer_version.starts_with("2.45") && self.files.iter().any(|f| f.block.is_some())
    }

    /// The index of `label` in [`Manifest::references`].
    #[must_use]
    pub fn reference_index(&self, label: &str) -> Option<usize> {
        self.references.iter().position(|r| r == label)
    }
}

#[cfg(test)]
mod tests;
