//! How durations, sizes and digests read in the human renderers, and the `HIVE_REDACT=1` switch that replaces the
//! ones that vary between runs with placeholders, so snapshots of plain and tty output are stable.

use std::borrow::Cow;

/// Formatting shared by the plain and tty renderers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Display {
    /// Durations become `<dur>` and `sha256:` digests `<digest>`.
    pub(super) redact: bool,
}

impl Display {
    /// Seconds with one decimal, as buildctl prints them: `0.3s`.
    pub(super) fn secs(self, secs: f64) -> String {
        if self.redact {
            "<dur>".to_owned()
        } else {
            format!("{secs:.1}s")
        }
    }

    /// Text that may hold digests (step names, errors, outputs).
    pub(super) fn text(self, text: &str) -> Cow<'_, str> {
        if self.redact {
            redact_digests(text)
        } else {
            Cow::Borrowed(text)
        }
    }
}

/// `1 image`, `2 images`.
pub(super) fn images(count: u32) -> String {
    format!("{count} image{}", if count == 1 { "" } else { "s" })
}

/// A byte count in decimal units, as BuildKit prints transfer sizes: `512B`, `2.31kB`, `14.6MB`.
pub(super) fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if count < 1000 {
        return format!("{count}B");
    }
    let mut value = count as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    // Three significant digits.
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.decimals$}{}", UNITS[unit])
}

/// Replaces every `sha256:` followed by 64 hex digits with `<digest>`; a shorter hex run (an abbreviated digest in a
/// layer id) becomes `<digest>` too, since it varies just the same.
fn redact_digests(text: &str) -> Cow<'_, str> {
    const PREFIX: &str = "sha256:";
    if !text.contains(PREFIX) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let after = &rest[at + PREFIX.len()..];
        let hex = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        out.push_str(&rest[..at]);
        if hex >= 12 {
            out.push_str("<digest>");
        } else {
            out.push_str(PREFIX);
            out.push_str(&after[..hex]);
        }
        rest = &after[hex..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `text` cut to `width` characters, ending in `…` when cut.
pub(super) fn truncate(text: &str, width: usize) -> Cow<'_, str> {
    if text.chars().count() <= width {
        return Cow::Borrowed(text);
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        cut.push('…');
    }
    Cow::Owned(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_buildkit() {
        assert_eq!(bytes(0), "0B");
        assert_eq!(bytes(999), "999B");
        assert_eq!(bytes(2310), "2.31kB");
        assert_eq!(bytes(14_600_000), "14.6MB");
        assert_eq!(bytes(123_456_789), "123MB");
        assert_eq!(bytes(5_000_000_000), "5.00GB");
    }

    #[test]
    fn redaction() {
        let digest = format!("sha256:{}", "ab12".repeat(16));
        let display = Display { redact: true };
        assert_eq!(display.secs(1.25), "<dur>");
        assert_eq!(
            display.text(&format!("docker.io/library/debian@{digest} and {digest}!")),
            "docker.io/library/debian@<digest> and <digest>!"
        );
        assert_eq!(
            display.text("sha256:zz and sha256:"),
            "sha256:zz and sha256:"
        );
        let plain = Display { redact: false };
        assert_eq!(plain.secs(1.25), "1.2s");
        assert_eq!(plain.text(&digest), digest);
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate("hello", 5), "hello");
        assert_eq!(truncate("hello", 4), "hel…");
        assert_eq!(truncate("hello", 0), "");
    }
}
