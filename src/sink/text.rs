//! Fast text renderings of dates and timestamps (SQLite stores them as ISO-8601 text, which its
//! own date functions read). chrono's formatter is general and ten times slower on hot paths.

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's civil-from-days.
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn push2(out: &mut String, v: u32) {
    out.push(char::from(b'0' + (v / 10) as u8));
    out.push(char::from(b'0' + (v % 10) as u8));
}

pub fn date(out: &mut String, days: i64) {
    let (y, m, d) = civil(days);
    if (0..=9999).contains(&y) {
        let y = y as u32;
        push2(out, y / 100);
        push2(out, y % 100);
    } else {
        out.push_str(&format!("{y:04}"));
    }
    out.push('-');
    push2(out, m);
    out.push('-');
    push2(out, d);
}

/// UTC microseconds → `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.
pub fn timestamp(out: &mut String, micros: i64) {
    wall_clock(out, micros);
    out.push('Z');
}

/// Microseconds of a timestamp without a time zone → `YYYY-MM-DDTHH:MM:SS[.ffffff]`: no `Z`,
/// which would claim UTC for a wall-clock time.
pub fn wall_clock(out: &mut String, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    date(out, days);
    out.push('T');
    push2(out, sod / 3600);
    out.push(':');
    push2(out, sod / 60 % 60);
    out.push(':');
    push2(out, sod % 60);
    if frac != 0 {
        out.push_str(&format!(".{frac:06}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_chrono() {
        for days in [-719_162i64, -1, 0, 1, 11_016, 15_706, 19_783, 2_932_896] {
            let mut s = String::new();
            date(&mut s, days);
            let expected = chrono::DateTime::from_timestamp(days * 86_400, 0)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string();
            assert_eq!(s, expected, "days {days}");
        }
        let mut s = String::new();
        timestamp(&mut s, 1_356_998_400_000_000 + 5 * 3_600_000_000);
        assert_eq!(s, "2013-01-01T05:00:00Z");
        s.clear();
        timestamp(&mut s, -1);
        assert_eq!(s, "1969-12-31T23:59:59.999999Z");
    }
}
