//! `pgro status -n NAMESPACE REPLICA`: a replica's state and restore history (`status.history`, newest
//! first) as one screen an auditor can screenshot, or as JSON. Rendering is pure (replica + "now" in, text
//! out) so the layout is unit-tested without a cluster.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use pgro_api::{
    CheckResult, PostgresPhysicalReplica, PostgresPhysicalReplicaStatus, ReplicaPhase,
    RestoreRecord, VerificationStatus,
};
use serde::Serialize;

use crate::cli::exit::Failure;

/// `pgro status …`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Namespace of the replica (default: the kubeconfig context's namespace, else `default`).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// The `PostgresPhysicalReplica`'s name.
    #[arg(value_name = "REPLICA")]
    pub replica: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Kubeconfig file (default: `KUBECONFIG`, `~/.kube/config`, else the in-cluster service account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Header block and history table.
    Table,
    /// Pretty JSON of the status fields an audit needs.
    Json,
}

/// Runs `pgro status`: exit 0, 1 when the replica does not exist or the apiserver fails, 2 when there is
/// no usable client configuration.
pub async fn run(args: StatusArgs) -> ExitCode {
    let client = match client(&args).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: no Kubernetes client configuration: {e}");
            return Failure::Usage.into();
        }
    };
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let api: Api<PostgresPhysicalReplica> = Api::namespaced(client, &ns);
    let replica = match api.get_opt(&args.replica).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!(
                "error: PostgresPhysicalReplica {ns}/{} not found",
                args.replica
            );
            return Failure::Other.into();
        }
        Err(e) => {
            eprintln!(
                "error: reading PostgresPhysicalReplica {ns}/{}: {e}",
                args.replica
            );
            return Failure::Other.into();
        }
    };
    let out = match args.output {
        Output::Table => render(&replica, Timestamp::now()),
        Output::Json => match render_json(&replica) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return Failure::Other.into();
            }
        },
    };
    print!("{out}");
    ExitCode::SUCCESS
}

/// The client the rest of pgro uses (`Client::try_default`), unless a kubeconfig or context is named.
async fn client(args: &StatusArgs) -> anyhow::Result<Client> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match (&args.kubeconfig, &args.context) {
        (None, None) => return Ok(Client::try_default().await?),
        (Some(path), _) => {
            Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await?,
    };
    Ok(Client::try_from(config)?)
}

/// The JSON shape of `--output json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonStatus<'a> {
    replica: String,
    namespace: String,
    phase: Option<&'a str>,
    current_restore: Option<&'a str>,
    data_time: Option<&'a Time>,
    last_verified_at: Option<&'a Time>,
    last_verification: Option<&'a VerificationStatus>,
    history: &'a [RestoreRecord],
}

/// `--output json`: the audit-relevant status fields as pretty JSON (newline-terminated).
///
/// # Errors
///
/// Serialisation failed (not expected for these types).
pub fn render_json(replica: &PostgresPhysicalReplica) -> serde_json::Result<String> {
    let s = replica.status.as_ref();
    let doc = JsonStatus {
        replica: replica.name_any(),
        namespace: replica.namespace().unwrap_or_default(),
        phase: s.and_then(|s| s.phase.as_ref()).map(ReplicaPhase::as_str),
        current_restore: s.and_then(|s| s.current_restore.as_deref()),
        data_time: s.and_then(|s| s.data_time.as_ref()),
        last_verified_at: s.and_then(|s| s.last_verified_at.as_ref()),
        last_verification: s.and_then(|s| s.last_verification.as_ref()),
        history: s.map_or(&[], |s| s.history.as_slice()),
    };
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}

/// The table output: a header block, then the history table (or a line saying there is none yet).
#[must_use]
pub fn render(replica: &PostgresPhysicalReplica, now: Timestamp) -> String {
    let empty = PostgresPhysicalReplicaStatus::default();
    let s = replica.status.as_ref().unwrap_or(&empty);
    let mut out = String::new();
    let ns = replica.namespace().unwrap_or_default();
    field(&mut out, "Replica", &format!("{ns}/{}", replica.name_any()));
    field(
        &mut out,
        "Phase",
        &or_dash(s.phase.as_ref().map(ReplicaPhase::as_str)),
    );
    field(
        &mut out,
        "Current restore",
        &or_dash(s.current_restore.as_deref()),
    );
    field(&mut out, "Data time", &when(s.data_time.as_ref(), now));
    let completed = when(s.last_restore_completed_at.as_ref(), now);
    field(&mut out, "Last restore completed", &completed);
    field(
        &mut out,
        "Last verified",
        &when(s.last_verified_at.as_ref(), now),
    );
    let verification = s.last_verification.as_ref();
    field(
        &mut out,
        "Last verification",
        &verification_summary(verification, now),
    );
    for c in verification.map_or(&[][..], |v| &v.checks) {
        let _ = writeln!(out, "  {}", check_line(c));
    }
    let failures = s.consecutive_restore_failures.to_string();
    field(&mut out, "Consecutive failures", &failures);
    let queue = match s.queue_position {
        0 => "-".to_owned(),
        n => format!(
            "{n} (waiting since {})",
            when(s.waiting_since.as_ref(), now)
        ),
    };
    field(&mut out, "Queue position", &queue);
    let next = when(s.next_scheduled_restore.as_ref(), now);
    field(&mut out, "Next scheduled restore", &next);
    out.push('\n');
    if s.history.is_empty() {
        out.push_str("no restore has finished yet\n");
    } else {
        out.push_str(&history_table(&s.history));
    }
    out
}

/// One `Label:   value` line of the header block, values aligned.
fn field(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "{:<24}{value}", format!("{label}:"));
}

/// Column headers; the numeric ones are right-aligned so magnitudes line up.
const COLUMNS: [(&str, bool); 15] = [
    ("RESTORE", false),
    ("OUTCOME", false),
    ("BACKUP", false),
    ("BACKUP TIME", false),
    ("DATA TIME", false),
    ("STARTED", false),
    ("DOWNLOAD", true),
    ("REPLAY", true),
    ("STARTUP", true),
    ("VERIFY", true),
    ("SWITCH", true),
    ("TOTAL", true),
    ("BYTES", true),
    ("CHECKS", false),
    ("REASON", false),
];

/// The history table, one row per record in the order given (newest first).
fn history_table(history: &[RestoreRecord]) -> String {
    let rows: Vec<[String; 15]> = history.iter().map(history_row).collect();
    let mut widths = COLUMNS.map(|(h, _)| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header = COLUMNS.map(|(h, _)| h.to_owned());
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let (w, right) = (widths[i], COLUMNS[i].1);
            if i + 1 == row.len() {
                // The last column is not padded: no trailing blanks in a copied table.
                line.push_str(cell);
            } else if right {
                let _ = write!(line, "{cell:>w$}  ");
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn history_row(r: &RestoreRecord) -> [String; 15] {
    let d = &r.durations;
    let end = r.activated_at.as_ref().or(r.failed_at.as_ref());
    let total = match (r.started_at.as_ref(), end) {
        (Some(a), Some(b)) => Some(b.0.duration_since(a.0).as_secs_f64()),
        _ => None,
    };
    let mut reasons: Vec<&str> = r.failure.iter().map(String::as_str).collect();
    reasons.extend(r.failed_checks.iter().map(String::as_str));
    [
        r.restore.clone(),
        r.outcome.clone(),
        shorten(&r.backup, 16),
        short_time(r.backup_time.as_ref()),
        short_time(r.data_time.as_ref()),
        short_time(r.started_at.as_ref()),
        secs(d.download),
        secs(d.replay),
        secs(d.startup),
        secs(d.verification),
        secs(d.switchover),
        secs(total),
        // 0 is the field's default: the operator did not know the size.
        if r.bytes == 0 {
            "-".to_owned()
        } else {
            human_bytes(r.bytes)
        },
        or_dash(r.verification.as_deref()),
        if reasons.is_empty() {
            "-".to_owned()
        } else {
            shorten(&reasons.join("; "), 60)
        },
    ]
}

/// `passed at … (… ago)`, `failed at …`, `running since …`, or `-`.
fn verification_summary(v: Option<&VerificationStatus>, now: Timestamp) -> String {
    let Some(v) = v else {
        return "-".to_owned();
    };
    match v.passed {
        Some(p) => format!(
            "{} at {}",
            if p { "passed" } else { "failed" },
            when(v.completed_at.as_ref().or(v.started_at.as_ref()), now)
        ),
        None => format!("running since {}", when(v.started_at.as_ref(), now)),
    }
}

/// `name: PASS value (detail) [message] in 0.2s`.
fn check_line(c: &CheckResult) -> String {
    let mut line = format!("{}: {}", c.name, if c.passed { "PASS" } else { "FAIL" });
    if let Some(v) = &c.value {
        let _ = write!(line, " {}", one_line(v));
    }
    if let Some(d) = &c.detail {
        let _ = write!(line, " ({})", one_line(d));
    }
    if let Some(m) = &c.message {
        let _ = write!(line, " [{}]", one_line(m));
    }
    let _ = write!(line, " in {:.1}s", c.seconds);
    line
}

/// RFC 3339 (whole seconds) and the distance from now: `… (3h12m ago)` or `… (in 5m00s)`.
fn when(t: Option<&Time>, now: Timestamp) -> String {
    let Some(Time(t)) = t else {
        return "-".to_owned();
    };
    let delta = now.duration_since(*t).as_secs_f64();
    let rel = if delta >= 0.0 {
        format!("{} ago", human_secs(delta))
    } else {
        format!("in {}", human_secs(-delta))
    };
    format!("{t:.0} ({rel})")
}

/// UTC to the minute, `2026-12-06 19:02Z`: enough to audit, short enough for a table.
fn short_time(t: Option<&Time>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |Time(t)| {
            t.to_zoned(TimeZone::UTC)
                .strftime("%Y-%m-%d %H:%MZ")
                .to_string()
        },
    )
}

fn secs(s: Option<f64>) -> String {
    s.map_or_else(|| "-".to_owned(), human_secs)
}

/// `12s`, `3m04s`, `1h02m`, `2d03h`: two units at most, fixed-width second unit so columns read easily.
fn human_secs(secs: f64) -> String {
    // Negative or NaN (clock skew, a hand-edited status) shows as 0s rather than nonsense.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m{:02}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h{:02}m", s / 3_600, s % 3_600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// Binary units, one decimal above bytes: `512 B`, `1.5 KiB`, `12.0 MiB`, `3.2 GiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss)] // one decimal is shown
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn or_dash(s: Option<&str>) -> String {
    s.map_or_else(|| "-".to_owned(), str::to_owned)
}

/// Collapses whitespace runs (messages can hold newlines, which would break the table) and keeps the first
/// `max` characters, plus an ellipsis when cut.
fn shorten(s: &str, max: usize) -> String {
    let s = one_line(s);
    if s.chars().count() <= max {
        return s;
    }
    let mut cut: String = s.chars().take(max).collect();
    cut.push('…');
    cut
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
