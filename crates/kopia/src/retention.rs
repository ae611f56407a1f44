//! Retention reasons as `kopia snapshot list --json` reports them (`retentionReason`): the
//! effective retention policy of each source (path → parents → user@host → host → global →
//! defaults, kopia `snapshot/policy`) applied with kopia's `ComputeRetentionReasons`.
//! Time periods are computed in the local time zone, as kopia does.

use chrono::{DateTime, Datelike, Local, NaiveDate, NaiveDateTime, TimeZone, Timelike};

use crate::error::{Corruption, Error};
use crate::manifest::ManifestEntry;
use crate::repository::{Indexed, Repository};
use crate::snapshot::{SnapshotManifest, SourceInfo};
use crate::time::Timestamp;

/// Incomplete snapshots younger than this (relative to the newest) are retained.
const RETAIN_INCOMPLETE_YOUNGER_THAN_NS: i64 = 4 * 3600 * 1_000_000_000;
/// The newest incomplete snapshots retained regardless of age.
const RETAIN_INCOMPLETE_MIN_COUNT: usize = 3;

/// Retention settings; `None` means "not set at this level".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct RetentionPolicy {
    /// Latest snapshots to keep.
    #[serde(rename = "keepLatest", default)]
    pub keep_latest: Option<i64>,
    /// Hourly snapshots to keep.
    #[serde(rename = "keepHourly", default)]
    pub keep_hourly: Option<i64>,
    /// Daily snapshots to keep.
    #[serde(rename = "keepDaily", default)]
    pub keep_daily: Option<i64>,
    /// Weekly snapshots to keep.
    #[serde(rename = "keepWeekly", default)]
    pub keep_weekly: Option<i64>,
    /// Monthly snapshots to keep.
    #[serde(rename = "keepMonthly", default)]
    pub keep_monthly: Option<i64>,
    /// Annual snapshots to keep.
    #[serde(rename = "keepAnnual", default)]
    pub keep_annual: Option<i64>,
}

impl RetentionPolicy {
    /// Kopia's built-in defaults.
    pub const DEFAULT: Self = Self {
        keep_latest: Some(10),
        keep_hourly: Some(48),
        keep_daily: Some(7),
        keep_weekly: Some(4),
        keep_monthly: Some(24),
        keep_annual: Some(3),
    };

    /// Fills fields unset here from `parent`.
    pub fn merge(&mut self, parent: &Self) {
        self.keep_latest = self.keep_latest.or(parent.keep_latest);
        self.keep_hourly = self.keep_hourly.or(parent.keep_hourly);
        self.keep_daily = self.keep_daily.or(parent.keep_daily);
        self.keep_weekly = self.keep_weekly.or(parent.keep_weekly);
        self.keep_monthly = self.keep_monthly.or(parent.keep_monthly);
        self.keep_annual = self.keep_annual.or(parent.keep_annual);
    }

    fn effective_keep_latest(&self) -> Option<i64> {
        let sum: i64 = [
            self.keep_latest,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_annual,
        ]
        .iter()
        .map(|v| v.unwrap_or(0))
        .sum();
        if sum == 0 {
            Some(i64::MAX)
        } else {
            self.keep_latest
        }
    }

    /// Sets `retention_reasons` on `group` (snapshots of one source), as kopia's
    /// `RetentionPolicy.ComputeRetentionReasons`.
    pub fn compute_reasons(&self, group: &mut [SnapshotManifest]) {
        if group.is_empty() {
            return;
        }
        let max_start = group.iter().map(|m| m.start_time).max().unwrap_or_default();
        let max_complete = group
            .iter()
            .filter(|m| m.incomplete_reason.is_empty())
            .map(|m| m.start_time)
            .max()
            .unwrap_or_default();
        let base = local(max_complete);
        // Go: maxCompleteStartTime.Add(365 * 24h), an exact duration (not AddDate).
        let max_time = base
            .checked_add_signed(chrono::Duration::days(365))
            .unwrap_or(base);
        let cutoff =
            |setting: Option<i64>, f: &dyn Fn(DateTime<Local>, i64) -> Option<DateTime<Local>>| {
                setting.and_then(|n| f(base, n)).unwrap_or(max_time)
            };
        let annual = cutoff(self.keep_annual, &|b, n| go_add_date(b, -n, 0, 0));
        let monthly = cutoff(self.keep_monthly, &|b, n| go_add_date(b, 0, -n, 0));
        let daily = cutoff(self.keep_daily, &|b, n| go_add_date(b, 0, 0, -n));
        let hourly = cutoff(self.keep_hourly, &|b, n| {
            b.checked_sub_signed(chrono::Duration::hours(n))
        });
        let weekly = cutoff(self.keep_weekly, &|b, n| go_add_date(b, 0, 0, -n * 7));

        // Newest first (kopia SortByTime(reverse = true)).
        let mut order: Vec<usize> = (0..group.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&group[a], &group[b]);
            y.start_time
                .cmp(&x.start_time)
                .then(y.end_time.cmp(&x.end_time))
        });
        let mut ids = std::collections::HashSet::new();
        let mut counters = std::collections::HashMap::<&'static str, i64>::new();
        for (i, &idx) in order.iter().enumerate() {
            let s = &group[idx];
            if !s.incomplete_reason.is_empty() {
                group[idx].retention_reasons = Vec::new();
                continue;
            }
            let t = local(s.start_time);
            let iso = t.iso_week();
            let cases: [PeriodCase; 6] = [
                (None, i.to_string(), "latest", self.effective_keep_latest()),
                (
                    Some(annual),
                    format!("{:04}", t.year()),
                    "annual",
                    self.keep_annual,
                ),
                (
                    Some(monthly),
                    format!("{:04}-{:02}", t.year(), t.month()),
                    "monthly",
                    self.keep_monthly,
                ),
                (
                    Some(weekly),
                    format!("{:04}-{:02}", iso.year(), iso.week()),
                    "weekly",
                    self.keep_weekly,
                ),
                (
                    Some(daily),
                    format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day()),
                    "daily",
                    self.keep_daily,
                ),
                (
                    Some(hourly),
                    format!(
                        "{:04}-{:02}-{:02} {:02}",
                        t.year(),
                        t.month(),
                        t.day(),
                        t.hour()
                    ),
                    "hourly",
                    self.keep_hourly,
                ),
            ];
            let mut reasons = Vec::new();
            for (cut, period, kind, max) in cases {
                let Some(max) = max else { continue };
                if cut.is_some_and(|c| t < c) || ids.contains(&period) {
                    continue;
                }
                let n = counters.entry(kind).or_insert(0);
                if *n < max {
                    ids.insert(period);
                    *n += 1;
                    reasons.push(format!("{kind}-{n}"));
                }
            }
            sort_retention_tags(&mut reasons);
            group[idx].retention_reasons = reasons;
        }
        for (i, &idx) in order.iter().enumerate() {
            if group[idx].incomplete_reason.is_empty() {
                break;
            }
            let age = max_start
                .as_nanos()
                .saturating_sub(group[idx].start_time.as_nanos());
            if age < RETAIN_INCOMPLETE_YOUNGER_THAN_NS || i < RETAIN_INCOMPLETE_MIN_COUNT {
                group[idx].retention_reasons.push("incomplete".to_owned());
            } else {
                break;
            }
        }
    }
}

/// (cutoff, period ID, period kind, how many to keep) — one row of kopia's `cases` table.
type PeriodCase = (Option<DateTime<Local>>, String, &'static str, Option<i64>);

fn local(t: Timestamp) -> DateTime<Local> {
    Local.timestamp_nanos(t.as_nanos())
}

/// Go `time.Time.AddDate` in the local zone: calendar fields are added and then normalised
/// (Mar 31 − 1 month = Mar 3, not Feb 28).
fn go_add_date(t: DateTime<Local>, years: i64, months: i64, days: i64) -> Option<DateTime<Local>> {
    let total_months = i64::from(t.year()) * 12 + i64::from(t.month0()) + years * 12 + months;
    let y = i32::try_from(total_months.div_euclid(12)).ok()?;
    let m = u32::try_from(total_months.rem_euclid(12)).ok()? + 1;
    let first = NaiveDate::from_ymd_opt(y, m, 1)?;
    let date = first.checked_add_signed(chrono::Duration::days(i64::from(t.day()) - 1 + days))?;
    let naive = NaiveDateTime::new(date, t.time());
    Local.from_local_datetime(&naive).earliest()
}

fn prefix_suffix(s: &str) -> (&str, &str) {
    match s.rfind('-') {
        Some(p) => (&s[..p], &s[p + 1..]),
        None => (s, ""),
    }
}

/// Kopia `SortRetentionTags`.
fn sort_retention_tags(tags: &mut [String]) {
    let rank = |p: &str| match p {
        "latest" => 1,
        "hourly" => 2,
        "daily" => 3,
        "weekly" => 4,
        "monthly" => 5,
        "annual" => 6,
        _ => 0,
    };
    tags.sort_by(|a, b| {
        let (p1, s1) = prefix_suffix(a);
        let (p2, s2) = prefix_suffix(b);
        rank(p1).cmp(&rank(p2)).then(p1.cmp(p2)).then(s1.cmp(s2))
    });
}

#[derive(Debug, Default, serde::Deserialize)]
struct PolicyJson {
    #[serde(default)]
    retention: RetentionPolicy,
    #[serde(rename = "noParent", default)]
    no_parent: bool,
}

/// Kopia `getParentPathOSIndependent` (without Windows volumes).
fn parent_path(p: &str) -> String {
    let mut pth = p;
    let mut last = pth.rfind(['/', '\\']);
    if let Some(l) = last
        && l == pth.len() - 1
        && l != 0
    {
        pth = &pth[..l];
        last = pth.rfind(['/', '\\']);
    }
    match last {
        None => p.to_owned(),
        Some(0) => pth[..1].to_owned(),
        Some(l) => pth[..l].to_owned(),
    }
}

/// The effective retention policy of `source` given all policy manifests: most specific first
/// (path, parent paths, user@host, host, global), then kopia's defaults; `noParent` stops.
pub(crate) fn effective_retention(
    policies: &[ManifestEntry],
    source: &SourceInfo,
) -> Result<RetentionPolicy, Error> {
    let find = |labels: &[(&str, &str)]| {
        policies
            .iter()
            .filter(|m| m.matches(labels))
            .collect::<Vec<_>>()
    };
    let mut chain = Vec::new();
    let mut path = source.path.clone();
    while !path.is_empty() {
        chain.extend(find(&[
            ("type", "policy"),
            ("policyType", "path"),
            ("username", &source.user_name),
            ("hostname", &source.host),
            ("path", &path),
        ]));
        let parent = parent_path(&path);
        if parent == path {
            break;
        }
        path = parent;
    }
    chain.extend(find(&[
        ("type", "policy"),
        ("policyType", "user"),
        ("username", &source.user_name),
        ("hostname", &source.host),
    ]));
    chain.extend(find(&[
        ("type", "policy"),
        ("policyType", "host"),
        ("hostname", &source.host),
    ]));
    chain.extend(find(&[("type", "policy"), ("policyType", "global")]));

    let mut merged = RetentionPolicy::default();
    for m in chain {
        let p: PolicyJson =
            serde_json::from_str(m.data.get()).map_err(|e| Error::CorruptSnapshot {
                manifest_id: m.id.clone(),
                cause: Corruption::Json(e),
            })?;
        merged.merge(&p.retention);
        if p.no_parent {
            return Ok(merged);
        }
    }
    merged.merge(&RetentionPolicy::DEFAULT);
    Ok(merged)
}

impl Repository<Indexed> {
    /// The effective retention policy of a source.
    ///
    /// # Errors
    ///
    /// Manifest read errors and malformed policy payloads.
    pub async fn effective_retention(&self, source: &SourceInfo) -> Result<RetentionPolicy, Error> {
        let policies = self.list_manifests(&[("type", "policy")]).await?;
        effective_retention(&policies, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_paths_follow_kopia() {
        assert_eq!(parent_path("/a/b/c"), "/a/b");
        assert_eq!(parent_path("/a/b/"), "/a");
        assert_eq!(parent_path("/a"), "/");
        assert_eq!(parent_path("/"), "/");
        assert_eq!(parent_path("rel"), "rel");
    }

    #[test]
    fn retention_tags_sort_by_kind_rank() {
        let mut t: Vec<String> = [
            "annual-1",
            "daily-1",
            "latest-1",
            "weekly-1",
            "hourly-1",
            "monthly-1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        sort_retention_tags(&mut t);
        assert_eq!(
            t,
            [
                "latest-1",
                "hourly-1",
                "daily-1",
                "weekly-1",
                "monthly-1",
                "annual-1"
            ]
        );
    }
}
