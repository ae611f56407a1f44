use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

const UID: &str = "6f1c1a53-4a0e-4bb5-9d39-2c8b2f3e9a11";

fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

fn next(expr: &str, after: &str) -> Timestamp {
    Schedule::parse(expr, UID)
        .expect("parses")
        .next_fire_after(at(after))
        .expect("fires")
}

#[test]
fn documented_schedule_fires_every_six_hours() {
    assert_eq!(
        next("0 */6 * * *", "2026-11-21T00:00:00Z"),
        at("2026-11-21T06:00:00Z")
    );
    assert_eq!(
        next("0 */6 * * *", "2026-11-21T17:59:59Z"),
        at("2026-11-21T18:00:00Z")
    );
}

#[test]
fn seed_schedule_fires_every_minute_of_every_sixth_hour() {
    // The seed's quick start: `* */6 * * *` is not "every six hours".
    assert_eq!(
        next("* */6 * * *", "2026-11-21T00:00:30Z"),
        at("2026-11-21T00:01:00Z")
    );
    assert_eq!(
        next("* */6 * * *", "2026-11-21T00:59:00Z"),
        at("2026-11-21T06:00:00Z")
    );
}

#[test]
fn timezone_suffix_is_honoured_and_utc_is_the_default() {
    assert_eq!(
        next("20 15 * * * Pacific/Auckland", "2026-11-21T00:00:00Z"),
        at("2026-11-21T02:20:00Z")
    );
    assert_eq!(
        next("20 15 * * *", "2026-11-21T00:00:00Z"),
        at("2026-11-21T15:20:00Z")
    );
}

#[test]
fn nonexistent_local_time_in_spring_forward_is_skipped() {
    // 02:30 does not exist in New York on 2026-03-08.
    assert_eq!(
        next("30 2 * * * America/New_York", "2026-03-07T12:00:00-05:00"),
        at("2026-03-09T02:30:00-04:00")
    );
}

#[test]
fn repeated_local_time_in_fall_back_fires_for_each_instant() {
    let first = next("30 1 * * * America/New_York", "2026-10-31T12:00:00-04:00");
    assert_eq!(first, at("2026-11-01T01:30:00-04:00"));
    let second = Schedule::parse("30 1 * * * America/New_York", UID)
        .and_then(|s| s.next_fire_after(first))
        .expect("fires");
    assert_eq!(second, at("2026-11-01T01:30:00-05:00"));
}

/// Regression: cronexpr 1.7 loops forever computing the next fire after a 30-minute DST change.
#[test]
fn half_hour_dst_change_does_not_hang_and_fires_at_local_midnight() {
    let schedule = Schedule::parse("0 0 * * 0 Australia/Lord_Howe", UID).expect("parses");
    // 2024-04-07 00:00+11:00 (a Sunday), the night Lord Howe falls back from +11:00 to +10:30
    let fire = schedule
        .next_fire_after(at("2024-04-06T12:59:00Z"))
        .expect("fires");
    assert_eq!(fire, at("2024-04-06T13:00:00Z"));
    let next = schedule.next_fire_after(fire).expect("fires");
    assert_eq!(next, at("2024-04-14T00:00:00+10:30"));
}

#[test]
fn invalid_schedules_report_the_parsers_message() {
    for (expr, fragment) in [
        ("* * *", "missing months"),
        ("60 * * * *", "value must be in range 0..=59"),
        (
            "0 * * * * Mars/Olympus",
            "failed to find timezone Mars/Olympus",
        ),
    ] {
        let err = Schedule::parse(expr, UID).expect_err(expr);
        assert!(err.to_string().contains(fragment), "{expr}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("invalid schedule {expr:?}")),
            "{err}"
        );
    }
}

#[test]
fn invalid_schedules_say_what_is_expected_with_an_example() {
    let err = Schedule::parse("0 0 */6 * * *", UID).expect_err("seconds");
    let msg = err.to_string();
    assert!(
        msg.contains("6 fields: seconds and year fields are not supported"),
        "{msg}"
    );
    assert!(msg.contains("'0 */6 * * *'"), "{msg}");
    let msg = Schedule::parse("every day", UID)
        .expect_err("words")
        .to_string();
    assert!(
        msg.contains("only 2 field(s)") && msg.contains("Expected 5 fields"),
        "{msg}"
    );
    let msg = Schedule::parse("61 * * * *", UID)
        .expect_err("range")
        .to_string();
    assert!(msg.contains("Expected 5 fields"), "{msg}");
}

#[test]
fn schedule_that_never_fires_is_an_error() {
    let schedule = Schedule::parse("0 0 31 2 *", UID).expect("parses");
    assert!(matches!(
        schedule.next_fire_after(at("2026-01-01T00:00:00Z")),
        Err(ScheduleError::NeverFires { .. })
    ));
}

#[test]
fn h_picks_the_same_minute_for_the_same_replica() {
    let a = next("H 15 * * *", "2026-11-21T00:00:00Z");
    let b = next("H 15 * * *", "2026-11-21T00:00:00Z");
    assert_eq!(a, b);
    assert_eq!(
        u64::from(a.strftime("%M").to_string().parse::<u8>().expect("minute")),
        hashed_value(UID) % 60
    );
    assert_eq!(hashed_value(UID), hashed_value(UID));
}

#[test]
fn h_spreads_replicas_across_the_hour() {
    let minutes: BTreeSet<String> = (0..600)
        .map(|i| {
            let uid = format!("00000000-0000-4000-8000-{i:012}");
            let t = Schedule::parse("H * * * *", &uid)
                .and_then(|s| s.next_fire_after(at("2026-11-21T00:00:00Z")));
            t.expect("fires").strftime("%M").to_string()
        })
        .collect();
    // 600 uniform draws over 60 minutes leave a minute empty with probability ~ 60·e^-10 ≈ 0.3%
    assert!(
        minutes.len() >= 55,
        "only {} distinct minutes",
        minutes.len()
    );
}

#[test]
fn zero_jitter_keeps_the_fire_time() {
    let s = Schedule::parse("0 3 * * *", UID).expect("parses");
    let t = next_scheduled_restore(&s, SignedDuration::ZERO, UID, at("2026-11-21T00:00:00Z"))
        .expect("fires");
    assert_eq!(t, at("2026-11-21T03:00:00Z"));
}

#[test]
fn jitter_is_spread_over_the_whole_window_and_stays_inside_it() {
    let window = SignedDuration::from_mins(10);
    let offsets: Vec<i64> = (0..2000)
        .map(|i| {
            jitter_offset(
                UID,
                Timestamp::from_second(1_800_000_000 + i * 3600).expect("ts"),
                window,
            )
        })
        .map(|d| d.as_secs())
        .collect();
    assert!(offsets.iter().all(|s| (-300..=300).contains(s)));
    assert!(
        offsets.iter().any(|s| *s < -270) && offsets.iter().any(|s| *s > 270),
        "covers both ends"
    );
    let mean = offsets.iter().sum::<i64>() as f64 / offsets.len() as f64;
    assert!(mean.abs() < 15.0, "centred, mean {mean}");
}

#[test]
fn jitter_is_deterministic_per_replica_and_fire() {
    let fire = at("2026-11-21T03:00:00Z");
    let window = SignedDuration::from_mins(10);
    assert_eq!(
        jitter_offset(UID, fire, window),
        jitter_offset(UID, fire, window)
    );
    let other = (0..20)
        .map(|i| jitter_offset(&format!("uid-{i}"), fire, window))
        .collect::<BTreeSet<_>>();
    assert!(
        other.len() > 15,
        "different replicas draw different offsets"
    );
}

#[test]
fn schedule_hash_changes_with_schedule_or_jitter_only() {
    let h = schedule_hash("0 */6 * * *", "10m");
    assert_eq!(h, schedule_hash("0 */6 * * *", "10m"));
    assert_ne!(h, schedule_hash("0 */6 * * *", "5m"));
    assert_ne!(h, schedule_hash("0 */3 * * *", "10m"));
    assert_ne!(schedule_hash("a", "bc"), schedule_hash("ab", "c"));
    assert_eq!(h.len(), 16);
}

fn expressions() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "* * * * *",
        "0 */6 * * *",
        "* */6 * * *",
        "H H * * *",
        "30 2 * * * America/New_York",
        "30 1 * * * America/New_York",
        "0 0 * * 0 Australia/Lord_Howe",
        "15 3 L * * Europe/Berlin",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// R4: successive scheduled times strictly increase and are never before the time they follow, with
    /// any jitter, across timezones and DST transitions.
    #[test]
    fn next_time_strictly_increases(
        expr in expressions(),
        jitter_secs in 0i64..7200,
        start in 1_700_000_000i64..1_900_000_000,
        uid in "[0-9a-f]{8}-[0-9a-f]{4}",
    ) {
        let schedule = Schedule::parse(expr, &uid).expect("parses");
        let jitter = SignedDuration::from_secs(jitter_secs);
        let mut previous = Timestamp::from_second(start).expect("ts");
        for _ in 0..12 {
            let next = next_scheduled_restore(&schedule, jitter, &uid, previous).expect("fires");
            prop_assert!(next > previous, "{} then {}", previous, next);
            let fire = schedule.next_fire_after(previous).expect("fires");
            let half = SignedDuration::from_millis(jitter.as_millis() as i64 / 2);
            prop_assert!(next >= fire.checked_sub(half).expect("ts"));
            prop_assert!(next <= fire.checked_add(half).expect("ts").max(previous.checked_add(SignedDuration::from_secs(1)).expect("ts")));
            previous = next;
        }
    }

    /// H values are a function of the identity only.
    #[test]
    fn h_is_stable_per_identity(uid in ".{1,40}") {
        let a = Schedule::parse("H H * * *", &uid).and_then(|s| s.next_fire_after(Timestamp::UNIX_EPOCH));
        let b = Schedule::parse("H H * * *", &uid).and_then(|s| s.next_fire_after(Timestamp::UNIX_EPOCH));
        prop_assert_eq!(a.expect("fires"), b.expect("fires"));
    }
}
