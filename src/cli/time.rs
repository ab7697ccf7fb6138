//! Times as the commands print them: coarse ages and durations in their
//! largest whole unit, from milliseconds of the server's clock.

/// How long ago `then` was, coarsely: `4s ago`, `12m ago`, `3h ago`,
/// `2d ago` (milliseconds since the epoch, both from the server's clock).
pub(super) fn ago(now: u64, then: u64) -> String {
    format!("{} ago", duration(now.saturating_sub(then)))
}

/// A duration in its largest whole unit: `4s`, `12m`, `3h`, `2d`.
pub(super) fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// A duration on the command line (`10s`, `1m`, `1h 30m`), for clap.
pub(super) fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::plan::parse_duration(s)
        .ok_or_else(|| format!("`{s}` is not a duration (try `10s`, `30m` or `1h`)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_the_largest_whole_unit() {
        assert_eq!(ago(10_000, 6_000), "4s ago");
        assert_eq!(ago(0, 5), "0s ago", "a clock step back is not negative");
        assert_eq!(duration(125_000), "2m");
        assert_eq!(duration(3 * 3_600_000 + 1), "3h");
        assert_eq!(duration(49 * 3_600_000), "2d");
    }
}
