//! Human output: aligned text tables and UTC times.
//!
//! Times are stored as Unix milliseconds; humans get
//! `YYYY-MM-DD HH:MM:SS` in UTC. The conversion is the civil-from-days
//! algorithm (Howard Hinnant), a few lines instead of a date crate.

/// A text table: rows (the first one usually a header), columns padded to
/// the widest cell. The last column is never padded, so lines carry no trailing blanks.
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose first row is `header`.
    pub fn new<I, S>(header: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut t = Table::default();
        t.row(header);
        t
    }

    pub fn row<I, S>(&mut self, cells: I) -> &mut Table
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// Rows, the header included.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count();
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// [`utc`] for an optional time; `-` when absent.
pub fn utc_or_dash(ms: Option<i64>) -> String {
    ms.map(utc).unwrap_or_else(|| "-".to_owned())
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar. Eras of 400 years (146 097 days) repeat exactly; within an
/// era, years are counted from March so the leap day falls last.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Shortens a cell to `max` characters for a table (JSON keeps it whole)
/// and keeps it on one line.
pub fn clip(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut short: String = one_line.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_matches_known_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_735_689_599_999), "2024-12-31 23:59:59");
        assert_eq!(utc(1_795_512_615_000), "2026-11-24 09:30:15");
        assert_eq!(utc(-1000), "1969-12-31 23:59:59");
        assert_eq!(utc(4_107_542_400_000), "2100-03-01 00:00:00");
    }

    #[test]
    fn columns_are_aligned_without_trailing_blanks() {
        let mut t = Table::new(["ID", "STATE", "ERROR"]);
        t.row(["1", "pending", ""]).row(["12", "dead", "refused"]);
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.render(),
            "ID  STATE    ERROR\n1   pending\n12  dead     refused\n"
        );
    }

    #[test]
    fn clip_keeps_one_line_and_marks_cuts() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip("abcdefghij", 5), "abcd…");
    }
}
