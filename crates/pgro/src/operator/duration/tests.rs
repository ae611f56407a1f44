use proptest::prelude::*;
use regex::Regex;

use super::*;

#[test]
fn friendly_forms_parse_to_their_value() {
    let cases = [
        ("5m", 300),
        ("1h 30m", 5400),
        ("1h30m", 5400),
        ("90s", 90),
        ("0", 0),
        ("2d", 172_800),
        ("1w", 604_800),
        ("10 minutes", 600),
        ("1.5h", 5400),
        (" 2 d ", 172_800),
    ];
    for (text, secs) in cases {
        assert_eq!(
            parse("f", text).expect(text),
            SignedDuration::from_secs(secs),
            "{text}"
        );
    }
}

/// Regression: humantime 2.2 failed with NumberOverflow on fractions of three or more digits of large
/// units, although the admission pattern accepts them.
#[test]
fn long_fractions_of_large_units_parse_exactly() {
    assert_eq!(
        parse("f", "0.001d").expect("0.001d"),
        SignedDuration::from_millis(86_400)
    );
    assert_eq!(
        parse("f", "1.001h").expect("1.001h"),
        SignedDuration::from_millis(3_603_600)
    );
    assert_eq!(
        parse("f", "0.5ms").expect("0.5ms"),
        SignedDuration::from_micros(500)
    );
}

#[test]
fn unparsable_duration_names_field_and_value() {
    let err = parse("scheduleJitter", "ten minutes").expect_err("rejected");
    assert_eq!(
        err.to_string(),
        "scheduleJitter \"ten minutes\" is not a duration such as 90s, 5m or 1h 30m"
    );
}

const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("msec", 1),
    ("millis", 1),
    ("s", 1000),
    ("sec", 1000),
    ("secs", 1000),
    ("second", 1000),
    ("seconds", 1000),
    ("m", 60_000),
    ("min", 60_000),
    ("mins", 60_000),
    ("minute", 60_000),
    ("minutes", 60_000),
    ("h", 3_600_000),
    ("hr", 3_600_000),
    ("hrs", 3_600_000),
    ("hour", 3_600_000),
    ("hours", 3_600_000),
    ("d", 86_400_000),
    ("day", 86_400_000),
    ("days", 86_400_000),
    ("w", 604_800_000),
    ("wk", 604_800_000),
    ("wks", 604_800_000),
    ("week", 604_800_000),
    ("weeks", 604_800_000),
];

proptest! {
    /// Every duration the admission pattern lets through parses in the operator, to the sum of its terms.
    #[test]
    fn every_admitted_duration_parses_to_the_sum_of_its_terms(
        terms in prop::collection::vec((0u64..10_000, 0..UNITS.len(), " {0,2}", " {0,2}"), 1..4),
    ) {
        let pattern = Regex::new(pgro_api::DURATION_PATTERN).expect("pattern compiles");
        let mut text = String::new();
        let mut millis = 0u64;
        for (n, unit, gap, sep) in &terms {
            let (name, scale) = UNITS[*unit];
            text.push_str(&format!("{n}{gap}{name}{sep}"));
            millis += n * scale;
        }
        prop_assert!(pattern.is_match(&text), "{text:?} should be admitted");
        let parsed = parse("f", &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed, SignedDuration::from_millis(i64::try_from(millis).expect("fits")));
    }

    /// Whatever the pattern admits, the operator can parse (no admitted value becomes a runtime error).
    #[test]
    fn pattern_admits_nothing_the_parser_rejects(text in "[0-9 .a-z]{1,12}") {
        let pattern = Regex::new(pgro_api::DURATION_PATTERN).expect("pattern compiles");
        if pattern.is_match(&text) {
            prop_assert!(parse("f", &text).is_ok(), "{text:?} admitted but not parsed");
        }
    }
}
