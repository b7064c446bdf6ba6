//! Canonical spellings pass; every other spelling that FastAPI (pydantic v2, lax
//! mode) reads as the same value is refused. The generators below write such
//! spellings; a small lax reader confirms each one means the same value.

use super::*;
use proptest::prelude::*;

fn one_of(values: &[&str]) -> CanonicalForm {
    CanonicalForm::OneOf(values.iter().map(|v| (*v).to_owned()).collect())
}

/// Reads an integer the way pydantic's lax mode reads one from text: surrounding
/// whitespace, a sign, `_` between digits, and a fraction of zeros are allowed.
fn lax_integer(text: &str) -> Option<i128> {
    let t = text.trim();
    let t = match t.split_once('.') {
        Some((whole, zeros)) if !zeros.is_empty() && zeros.bytes().all(|b| b == b'0') => whole,
        Some(_) => return None,
        None => t,
    };
    let (negative, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let n: i128 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -n } else { n })
}

/// Reads a number as pydantic's lax mode does (Python `float()` on the text).
fn lax_number(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    t.replace('_', "").parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Reads a boolean as pydantic's lax mode does.
fn lax_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// Spellings of the integer `n` other than its canonical one.
fn integer_spellings(n: i64) -> impl Strategy<Value = String> {
    let canonical = n.to_string();
    let (sign, digits) = match canonical.strip_prefix('-') {
        Some(d) => ("-", d.to_owned()),
        None => ("", canonical.clone()),
    };
    (0usize..8, 1usize..4, 0usize..digits.len()).prop_map(move |(how, count, at)| {
        let zeros = "0".repeat(count);
        match how {
            0 => format!("{sign}{zeros}{digits}"),
            1 if sign.is_empty() => format!("+{digits}"),
            1 => format!("-{zeros}{digits}"),
            2 => format!("{canonical}%20"),
            3 => format!("%20{canonical}"),
            4 => format!("{canonical}.{zeros}"),
            5 if digits.len() > 1 => format!("{sign}{}_{}", &digits[..at.max(1)], &digits[at.max(1)..]),
            5 => format!("{sign}0_{digits}"),
            6 if n == 0 => "-0".to_owned(),
            6 => format!("{canonical}%09"),
            _ => format!("{canonical}.0%0A"),
        }
    })
}

/// Percent-decodes `%20`, `%09` and `%0A` as the upstream does before reading.
fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

proptest! {
    #[test]
    fn canonical_integers_pass(n in any::<i64>(), u in any::<u64>()) {
        prop_assert!(CanonicalForm::Integer.accepts(&n.to_string()));
        prop_assert!(CanonicalForm::Integer.accepts(&u.to_string()));
    }

    #[test]
    fn other_spellings_of_an_integer_are_refused(
        (n, spelling) in any::<i64>().prop_flat_map(|n| (Just(n), integer_spellings(n)))
    ) {
        prop_assert_eq!(lax_integer(&decode(&spelling)), Some(i128::from(n)), "generator: {}", spelling);
        prop_assert_ne!(&spelling, &n.to_string());
        prop_assert!(!CanonicalForm::Integer.accepts(&spelling), "{}", spelling);
    }

    #[test]
    fn canonical_numbers_pass(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
        let x = if x == 0.0 { 0.0 } else { x };
        prop_assert!(CanonicalForm::Number.accepts(&x.to_string()), "{}", x);
    }

    #[test]
    fn other_spellings_of_a_number_are_refused(
        x in any::<f64>().prop_filter("finite", |x| x.is_finite() && *x != 0.0),
        how in 0usize..7,
    ) {
        let canonical = x.to_string();
        let spelling = match how {
            0 => format!("{x:e}"),
            1 if x > 0.0 => format!("+{canonical}"),
            1 => format!("-0{}", &canonical[1..]),
            2 => format!("{canonical}%20"),
            3 if canonical.contains('.') => format!("{canonical}0"),
            3 => format!("{canonical}.0"),
            4 => format!("{x:.30}"),
            5 => format!("{x:E}"),
            _ => format!("0{canonical}").replace("0-", "-0"),
        };
        prop_assume!(spelling != canonical && lax_number(&decode(&spelling)) == Some(x));
        prop_assert!(!CanonicalForm::Number.accepts(&spelling), "{}", spelling);
    }

    #[test]
    fn other_spellings_of_a_boolean_are_refused(
        value in any::<bool>(),
        spelling in prop::sample::select(vec![
            "True", "TRUE", "tRuE", "1", "yes", "on", "Y", "t", "true%20", "%20true", "True%0A",
            "False", "FALSE", "0", "no", "off", "N", "f", "false%20", "%09false",
        ]),
    ) {
        let canonical = if value { "true" } else { "false" };
        prop_assert!(CanonicalForm::Boolean.accepts(canonical));
        if lax_bool(&decode(spelling)) == Some(value) {
            prop_assert!(!CanonicalForm::Boolean.accepts(spelling), "{}", spelling);
        }
    }

    #[test]
    fn uuids_pass_only_lower_case_and_hyphenated(bytes in any::<[u8; 16]>(), how in 0usize..6) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let canonical = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
        prop_assert!(CanonicalForm::Uuid.accepts(&canonical));
        let spelling = match how {
            0 => hex.clone(),
            1 => format!("%7B{canonical}%7D"),
            2 => format!("urn:uuid:{canonical}"),
            3 => format!("{canonical}%20"),
            4 => format!("{}{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]),
            _ => canonical.to_uppercase(),
        };
        prop_assume!(spelling != canonical);
        prop_assert!(!CanonicalForm::Uuid.accepts(&spelling), "{}", spelling);
    }

    #[test]
    fn dates_pass_only_as_yyyy_mm_dd(year in 1u32..10000, month in 1u32..13, day in 1u32..29, how in 0usize..5) {
        let canonical = format!("{year:04}-{month:02}-{day:02}");
        prop_assert!(CanonicalForm::Date.accepts(&canonical));
        let spelling = match how {
            0 => format!("{year}-{month}-{day}"),
            1 => format!("{canonical}T00:00:00"),
            2 => format!("{canonical}%20"),
            3 => format!("{year:04}{month:02}{day:02}"),
            _ => format!("+{canonical}"),
        };
        prop_assume!(spelling != canonical);
        prop_assert!(!CanonicalForm::Date.accepts(&spelling), "{}", spelling);
    }

    #[test]
    fn date_times_pass_only_in_rfc_3339_form(
        day in 1u32..29, hour in 0u32..24, minute in 0u32..60, second in 0u32..60,
        micros in 1u32..1_000_000, how in 0usize..7,
    ) {
        let base = format!("2024-02-{day:02}T{hour:02}:{minute:02}:{second:02}");
        let frac = format!("{micros:06}").trim_end_matches('0').to_owned();
        let canonical = format!("{base}.{frac}Z");
        prop_assert!(CanonicalForm::DateTime.accepts(&canonical), "{}", canonical);
        prop_assert!(CanonicalForm::DateTime.accepts(&format!("{}Z", base)), "{}", base);
        prop_assert!(CanonicalForm::DateTime.accepts(&format!("{}-05:30", base)), "{}", base);
        let spelling = match how {
            0 => format!("{base}.{frac}0Z"),
            1 => format!("{base}.{frac}+00:00"),
            2 => format!("{base}.{frac}z"),
            3 => canonical.replace('T', "t"),
            4 => canonical.replace('T', "%20"),
            5 => format!("{base}.{frac}-00:00"),
            _ => format!("{base}.000000Z"),
        };
        prop_assert!(!CanonicalForm::DateTime.accepts(&spelling), "{}", spelling);
    }
}

#[test]
fn the_bypass_spellings_of_the_finding_are_refused() {
    for spelling in ["00", "+0", "0%20", "%200", "1.0", "0_1", "-0", "0.0", "1e0", "", "0x1", "１"] {
        assert!(!CanonicalForm::Integer.accepts(spelling), "{spelling}");
    }
    assert!(CanonicalForm::Integer.accepts("0") && CanonicalForm::Integer.accepts("-12"));
    assert!(CanonicalForm::Integer.accepts("18446744073709551615"));
    assert!(!CanonicalForm::Integer.accepts("18446744073709551616"), "beyond u64");
    assert!(!CanonicalForm::Integer.accepts("-9223372036854775809"), "below i64");
}

#[test]
fn numbers_are_shortest_decimals() {
    for ok in ["0", "1", "-1.5", "0.1", "1000000000000000000000", "0.0000001"] {
        assert!(CanonicalForm::Number.accepts(ok), "{ok}");
    }
    for refused in ["-0", "1.0", "1.50", ".5", "5.", "1e3", "+1", "01", "inf", "NaN", "0.10000000000000001"] {
        assert!(!CanonicalForm::Number.accepts(refused), "{refused}");
    }
}

#[test]
fn dates_must_exist() {
    assert!(CanonicalForm::Date.accepts("2024-02-29"));
    for refused in ["2023-02-29", "2024-13-01", "2024-04-31", "0000-01-01", "2024-1-01"] {
        assert!(!CanonicalForm::Date.accepts(refused), "{refused}");
    }
    assert!(!CanonicalForm::DateTime.accepts("2024-01-01T24:00:00Z"));
    assert!(!CanonicalForm::DateTime.accepts("2024-01-01T00:00:60Z"));
    assert!(!CanonicalForm::DateTime.accepts("2024-01-01T00:00Z"));
    assert!(!CanonicalForm::DateTime.accepts("2024-01-01T00:00:00+24:00"));
    assert!(!CanonicalForm::DateTime.accepts("2024-01-01T00:00:00.1234567Z"));
}

#[test]
fn enums_take_their_values_exactly() {
    let colors = one_of(&["red", "dark blue"]);
    assert!(colors.accepts("red") && colors.accepts("dark%20blue"));
    for refused in ["Red", "RED", "red%20", "%20red", "re", "dark+blue"] {
        assert!(!colors.accepts(refused), "{refused}");
    }
    let levels = one_of(&["1", "2"]);
    assert!(levels.accepts("1"));
    assert!(!levels.accepts("01") && !levels.accepts("1.0") && !levels.accepts("+1"));
}
