//! Durations as written in the config file: `250ms`, `5s`, `10m`, `2h`, `1d`.

use std::time::Duration;

/// Parses `250ms`, `5s`, `10m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} needs a unit (ms, s, m, h, d)"))?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s or 2h"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: unit must be ms, s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s != 0 && s % 86400 == 0 {
        format!("{}d", s / 86400)
    } else if s != 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s != 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
