use pgro_api::testutil::from_yaml;

use super::*;

fn now() -> Timestamp {
    "2026-12-06T22:14:00Z".parse().expect("timestamp")
}

fn replica(status: &str) -> PostgresPhysicalReplica {
    from_yaml(&format!(
        r"
apiVersion: pgro.bes.au/v1alpha1
kind: PostgresPhysicalReplica
metadata: {{name: orders, namespace: analytics}}
spec: {{schedule: '0 */6 * * *'}}
status: {status}
"
    ))
    .expect("replica")
}

/// A replica serving a verified restore, with one failed and one early-failed restore before it.
const STATUS: &str = r"
  phase: Ready
  currentRestore: orders-20261206-1845
  dataTime: '2026-12-06T19:02:00Z'
  lastRestoreCompletedAt: '2026-12-06T19:10:30Z'
  lastVerifiedAt: '2026-12-06T19:09:40Z'
  lastVerification:
    startedAt: '2026-12-06T19:09:30Z'
    completedAt: '2026-12-06T19:09:40Z'
    passed: true
    checks:
    - {name: pgro.applicationDatabase, passed: true, value: '2 databases', seconds: 0.01}
    - {name: orders-recent, passed: true, value: 'true', detail: 'n=18234', seconds: 0.2}
  consecutiveRestoreFailures: 0
  queuePosition: 0
  nextScheduledRestore: '2026-12-07T00:00:00Z'
  history:
  - restore: orders-20261206-1845
    outcome: Active
    backup: k8a3f0c9e1d2b4a5c6d7e8f90a1b2c3d4
    backupTime: '2026-12-06T18:30:00Z'
    dataTime: '2026-12-06T19:02:00Z'
    startedAt: '2026-12-06T18:45:00Z'
    activatedAt: '2026-12-06T19:10:30Z'
    durations: {download: 1012.4, replay: 252, startup: 12, verification: 10.2, switchover: 44}
    bytes: 13314398618
    verification: passed
  - restore: orders-20261206-1245
    outcome: Failed
    backup: k77e1
    backupTime: '2026-12-06T12:30:00Z'
    startedAt: '2026-12-06T12:45:00Z'
    failedAt: '2026-12-06T13:49:02Z'
    durations: {download: 3720, replay: 140, startup: 9, verification: 3}
    bytes: 1536
    verification: failed
    failedChecks: ['orders-recent: false']
    failure: 'VerificationFailed: check orders-recent returned false'
  - restore: orders-20261206-0645
    outcome: Failed
    backup: k5
    startedAt: '2026-12-06T06:45:00Z'
    durations: {}
    failure: |-
      RestoreJobFailed: the restore Job failed:
      storage unreachable after 5 attempts, giving up on this snapshot for now
";

const EXPECTED: &str = "\
Replica:                analytics/orders
Phase:                  Ready
Current restore:        orders-20261206-1845
Data time:              2026-12-06T19:02:00Z (3h12m ago)
Last restore completed: 2026-12-06T19:10:30Z (3h03m ago)
Last verified:          2026-12-06T19:09:40Z (3h04m ago)
Last verification:      passed at 2026-12-06T19:09:40Z (3h04m ago)
  pgro.applicationDatabase: PASS 2 databases in 0.0s
  orders-recent: PASS true (n=18234) in 0.2s
Consecutive failures:   0
Queue position:         -
Next scheduled restore: 2026-12-07T00:00:00Z (in 1h46m)

";

#[test]
fn renders_header_and_history() {
    let out = render(&replica(STATUS), now());
    assert!(out.starts_with(EXPECTED), "{out}");
    let table: Vec<&str> = out[EXPECTED.len()..].lines().collect();
    assert_eq!(table.len(), 4);
    assert!(table[0].starts_with("RESTORE "));
    assert!(table[0].ends_with("  CHECKS  REASON"), "{}", table[0]);
}

#[test]
fn verified_active_record() {
    let row = history_row(&replica(STATUS).status.expect("status").history[0]);
    assert_eq!(
        row,
        [
            "orders-20261206-1845",
            "Active",
            "k8a3f0c9e1d2b4a5…",
            "2026-12-06 18:30Z",
            "2026-12-06 19:02Z",
            "2026-12-06 18:45Z",
            "16m52s",
            "4m12s",
            "12s",
            "10s",
            "44s",
            "25m30s",
            "12.4 GiB",
            "passed",
            "-",
        ]
        .map(str::to_owned)
    );
}

#[test]
fn failed_record_names_failure_and_failed_checks() {
    let row = history_row(&replica(STATUS).status.expect("status").history[1]);
    assert_eq!(row[1], "Failed");
    assert_eq!(row[2], "k77e1");
    assert_eq!(row[4], "-", "no data time");
    assert_eq!(row[6], "1h02m");
    assert_eq!(row[10], "-", "never switched over");
    assert_eq!(row[11], "1h04m");
    assert_eq!(row[12], "1.5 KiB");
    assert_eq!(row[13], "failed");
    assert_eq!(
        row[14],
        "VerificationFailed: check orders-recent returned false; orde…"
    );
    assert_eq!(row[14].chars().count(), 61);
}

#[test]
fn absent_durations_and_times_are_dashes() {
    let row = history_row(&replica(STATUS).status.expect("status").history[2]);
    for (i, cell) in row.iter().enumerate().take(14).skip(3) {
        if i != 5 {
            assert_eq!(cell, "-", "column {}", COLUMNS[i].0);
        }
    }
    // The newline in the failure message is collapsed, and the whole is cut to 60 characters.
    assert_eq!(
        row[14],
        "RestoreJobFailed: the restore Job failed: storage unreachabl…"
    );
}

/// Where each cell sits in a rendered line, as (first, past-last) character offsets.
fn spans(line: &str, cells: &[String]) -> Vec<(usize, usize)> {
    let chars: Vec<char> = line.chars().collect();
    let mut at = 0;
    cells
        .iter()
        .map(|cell| {
            let cell: Vec<char> = cell.chars().collect();
            let start = (at..chars.len())
                .find(|&i| chars[i..].starts_with(&cell))
                .expect("cell in line");
            assert!(
                chars[at..start].iter().all(|&c| c == ' '),
                "only blanks between cells: {line}"
            );
            at = start + cell.len();
            (start, at)
        })
        .collect()
}

#[test]
fn columns_are_aligned() {
    let r = replica(STATUS);
    let rows: Vec<[String; 15]> = r
        .status
        .as_ref()
        .expect("status")
        .history
        .iter()
        .map(history_row)
        .collect();
    let header = COLUMNS.map(|(h, _)| h.to_owned());
    let out = render(&r, now());
    let lines: Vec<&str> = out[EXPECTED.len()..].lines().collect();
    assert_eq!(lines.len(), rows.len() + 1);
    let head = spans(lines[0], &header);
    for (line, cells) in lines[1..].iter().zip(&rows) {
        let got = spans(line, cells);
        for (i, ((h, g), (name, right))) in head.iter().zip(&got).zip(COLUMNS).enumerate() {
            if right {
                assert_eq!(h.1, g.1, "{name} ends where its header does: {line}");
            } else {
                assert_eq!(h.0, g.0, "{name} starts where its header does: {line}");
            }
            if i + 1 == COLUMNS.len() {
                assert_eq!(g.1, line.chars().count(), "nothing after REASON: {line:?}");
            }
        }
    }
}

#[test]
fn empty_history_says_so() {
    let out = render(
        &replica("{phase: Restoring, currentRestore: orders-20261206-1845, queuePosition: 2}"),
        now(),
    );
    assert!(out.contains("Phase:                  Restoring\n"), "{out}");
    assert!(out.contains("Data time:              -\n"), "{out}");
    assert!(
        out.contains("Queue position:         2 (waiting since -)\n"),
        "{out}"
    );
    assert!(out.ends_with("\nno restore has finished yet\n"), "{out}");
    assert!(!out.contains("RESTORE"));
}

#[test]
fn no_status_at_all() {
    let r: PostgresPhysicalReplica = from_yaml(
        "apiVersion: pgro.bes.au/v1alpha1\nkind: PostgresPhysicalReplica\n\
         metadata: {name: orders, namespace: analytics}\nspec: {schedule: '@daily'}",
    )
    .expect("replica");
    let out = render(&r, now());
    assert!(
        out.starts_with("Replica:                analytics/orders\nPhase:                  -\n")
    );
    assert!(out.ends_with("no restore has finished yet\n"));
}

#[test]
fn failed_verification_lists_each_check() {
    let out = render(
        &replica(
            r"
  lastVerification:
    completedAt: '2026-12-06T13:48:00Z'
    passed: false
    checks:
    - {name: orders-recent, passed: false, value: 'false', detail: 'n=0', message: 'returned false', seconds: 0.23}
",
        ),
        now(),
    );
    assert!(
        out.contains("Last verification:      failed at 2026-12-06T13:48:00Z (8h26m ago)\n"),
        "{out}"
    );
    assert!(out.contains("\n  orders-recent: FAIL false (n=0) [returned false] in 0.2s\n"));
}

#[test]
fn json_has_the_audit_fields() {
    let v: serde_json::Value =
        serde_json::from_str(&render_json(&replica(STATUS)).expect("json")).expect("parses");
    assert_eq!(v["replica"], "orders");
    assert_eq!(v["namespace"], "analytics");
    assert_eq!(v["phase"], "Ready");
    assert_eq!(v["currentRestore"], "orders-20261206-1845");
    assert_eq!(v["dataTime"], "2026-12-06T19:02:00Z");
    assert_eq!(v["lastVerifiedAt"], "2026-12-06T19:09:40Z");
    assert_eq!(v["lastVerification"]["passed"], true);
    assert_eq!(v["history"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["history"][1]["failedChecks"][0], "orders-recent: false");
}

#[test]
fn human_units() {
    assert_eq!(human_secs(0.4), "0s");
    assert_eq!(human_secs(59.4), "59s");
    assert_eq!(human_secs(59.6), "1m00s");
    assert_eq!(human_secs(184.0), "3m04s");
    assert_eq!(human_secs(3_720.0), "1h02m");
    assert_eq!(human_secs(-5.0), "0s");
    assert_eq!(human_secs(f64::NAN), "0s");
    assert_eq!(human_secs(90_000.0), "1d01h");
    assert_eq!(human_bytes(1023), "1023 B");
    assert_eq!(human_bytes(1024), "1.0 KiB");
    assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
}
