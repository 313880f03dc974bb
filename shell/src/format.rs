//! Rendering results as zkCli does: the stat block, dates, and safe data output.
//!
//! `stat` prints ZooKeeper's field names in zkCli's order (`cZxid = 0x...`); zxids and
//! the ephemeral owner are `Long.toHexString` (lower case, no padding, two's complement
//! for negative numbers) and times are Java's `Date.toString()` format, always in UTC.
//!
//! Data is printed as text when it is UTF-8; a backslash and every control character
//! (newlines included) is escaped (`\\`, `\n`, `\t`, `\r`, `\0`, `\u{1b}`), and bytes that
//! are not UTF-8 are shown as `\xNN`, so the terminal never receives raw control bytes
//! and the output is unambiguous.

use zabkeeper_proto::wire::Stat;

/// Java's `Date.toString()` for milliseconds since the epoch, in UTC:
/// `Thu Jan 01 00:00:00 UTC 1970`.
pub fn java_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        y
    )
}

/// Gregorian (year, month 1-12, day 1-31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `Long.toHexString` with zkCli's `0x` prefix.
pub fn hex_long(v: i64) -> String {
    format!("0x{v:x}")
}

/// The stat block, one `name = value` line per field, as zkCli prints it.
pub fn stat_text(s: &Stat) -> String {
    format!(
        "cZxid = {}\nctime = {}\nmZxid = {}\nmtime = {}\npZxid = {}\ncversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = {}\ndataLength = {}\nnumChildren = {}\n",
        hex_long(s.czxid),
        java_date(s.ctime),
        hex_long(s.mzxid),
        java_date(s.mtime),
        hex_long(s.pzxid),
        s.cversion,
        s.version,
        s.aversion,
        hex_long(s.ephemeral_owner),
        s.data_length,
        s.num_children
    )
}

/// The stat as a JSON object with ZooKeeper's field names and plain numbers.
pub fn stat_json(s: &Stat) -> serde_json::Value {
    serde_json::json!({
        "czxid": s.czxid, "mzxid": s.mzxid, "pzxid": s.pzxid,
        "ctime": s.ctime, "mtime": s.mtime,
        "version": s.version, "cversion": s.cversion, "aversion": s.aversion,
        "ephemeralOwner": s.ephemeral_owner, "dataLength": s.data_length, "numChildren": s.num_children,
    })
}

/// Data made safe for a terminal (see the module doc).
pub fn escape_data(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len());
    for chunk in data.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\0' => out.push_str("\\0"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_dates() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        // 2026-11-23T15:52:40Z, a Monday.
        assert_eq!(java_date(1_795_449_160_123), "Mon Nov 23 15:52:40 UTC 2026");
        // Leap day, and a date before the epoch.
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(java_date(-1000), "Wed Dec 31 23:59:59 UTC 1969");
    }

    #[test]
    fn stat_block_matches_zkcli() {
        let s = Stat {
            czxid: 0x10000002,
            mzxid: 0x10000003,
            ctime: 0,
            mtime: 1000,
            version: 1,
            cversion: 2,
            aversion: 0,
            ephemeral_owner: 0x1000abc,
            data_length: 5,
            num_children: 3,
            pzxid: 0x10000004,
        };
        assert_eq!(
            stat_text(&s),
            "cZxid = 0x10000002\nctime = Thu Jan 01 00:00:00 UTC 1970\nmZxid = 0x10000003\nmtime = Thu Jan 01 00:00:01 UTC 1970\n\
             pZxid = 0x10000004\ncversion = 2\ndataVersion = 1\naclVersion = 0\nephemeralOwner = 0x1000abc\ndataLength = 5\nnumChildren = 3\n"
        );
    }

    #[test]
    fn negative_longs_print_as_twos_complement() {
        assert_eq!(hex_long(i64::MIN), "0x8000000000000000");
        assert_eq!(hex_long(-1), "0xffffffffffffffff");
        assert_eq!(hex_long(0), "0x0");
    }

    #[test]
    fn data_never_contains_raw_control_bytes() {
        assert_eq!(escape_data(b"plain text"), "plain text");
        assert_eq!(escape_data("h\u{e9}llo".as_bytes()), "h\u{e9}llo");
        assert_eq!(escape_data(b"a\nb\tc\\d\0"), "a\\nb\\tc\\\\d\\0");
        assert_eq!(escape_data(b"\x1b[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape_data(&[0xff, b'a', 0xc3]), "\\xffa\\xc3");
        let all: Vec<u8> = (0u8..=255).collect();
        assert!(escape_data(&all).chars().all(|c| !c.is_control()));
    }
}
