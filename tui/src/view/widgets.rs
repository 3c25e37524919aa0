//! What every screen draws with: ages, sparklines, shades, percentages, table selection
//! and the centred box of dialogs.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::TableState;

use l10n::{Lang, t};

/// "5 s", "3 min", "2 h", "4 d" (in Chinese "5 秒" …).
pub fn age(lang: Lang, ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=59 => t!(lang, "console-age-s", n = s),
        60..=3_599 => t!(lang, "console-age-min", n = s / 60),
        3_600..=86_399 => t!(lang, "console-age-h", n = s / 3_600),
        _ => t!(lang, "console-age-d", n = s / 86_400),
    }
}

/// `at` as the console's clock reads it, 24-hour: `14:05` today, `12-03 14:05` before.
pub fn clock(tz: &jiff::tz::TimeZone, at_ms: i64, now_ms: i64) -> String {
    let zoned = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| t.to_zoned(tz.clone()))
    };
    match (zoned(at_ms), zoned(now_ms)) {
        (Some(at), Some(now)) if at.date() == now.date() => at.strftime("%H:%M").to_string(),
        (Some(at), _) => at.strftime("%m-%d %H:%M").to_string(),
        _ => "?".into(),
    }
}

/// A text sparkline: one block per value, blank for zero (and below: counts are never
/// negative, but a bad answer must not panic the screen).
pub fn spark(values: &[i64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    values
        .iter()
        .map(|&v| {
            if v <= 0 {
                ' '
            } else {
                BARS[(v * 7 / max).min(7) as usize]
            }
        })
        .collect()
}

pub(super) fn selected(n: usize) -> TableState {
    TableState::default().with_selected(Some(n))
}

/// The rows of a list that fit in `rows` lines with `sel` on screen (at the bottom once the
/// list scrolls), and `sel`'s index among them: only visible rows are built, so a list of
/// thousands costs what a screenful does.
pub(super) fn window(sel: usize, len: usize, rows: u16) -> (std::ops::Range<usize>, usize) {
    let rows = usize::from(rows.max(1));
    let start = (sel + 1).saturating_sub(rows).min(len);
    (start..(start + rows).min(len), sel.saturating_sub(start))
}

pub(super) fn highlight() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

/// One occupancy as a shade: `·` under 5%, `░` under 35%, `▒` under 60%, `▓` under 80%,
/// `█` at 80% and above (the saturation yardstick); colour repeats it.
pub fn shade(occupancy: f64) -> (char, Color) {
    match occupancy {
        x if x >= 0.8 => ('█', Color::Red),
        x if x >= 0.6 => ('▓', Color::Yellow),
        x if x >= 0.35 => ('▒', Color::Green),
        x if x >= 0.05 => ('░', Color::Green),
        _ => ('·', Color::DarkGray),
    }
}

/// 0..1 values as bars on an absolute scale (a full bar is 100%).
pub(super) fn level_spark(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .iter()
        .map(|v| BARS[((v.clamp(0.0, 1.0) * 7.0).round()) as usize])
        .collect()
}

pub(super) fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

pub(super) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

pub(super) fn severity_style(s: &str) -> Style {
    match s {
        "critical" => Style::new().fg(Color::Red).bold(),
        "major" => Style::new().fg(Color::Red),
        "minor" => Style::new().fg(Color::Yellow),
        _ => Style::new().fg(Color::Gray),
    }
}

/// `text` cut to at most `width` terminal columns, ending with `…` when cut. Wide characters
/// (CJK: two columns) are never split: the cut falls before one that would not fit.
pub fn ellipsize(text: &str, width: usize) -> String {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    if text.width() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        // Room must stay for the ellipsis (one column).
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// `text` right-aligned in `columns` terminal columns.
pub(super) fn pad_left(text: &str, columns: usize) -> String {
    let width = unicode_width::UnicodeWidthStr::width(text);
    format!("{}{text}", " ".repeat(columns.saturating_sub(width)))
}

/// `text` fitted to exactly `width` columns: cut with [`ellipsize`], then padded with spaces
/// on the right, so columns of mixed Chinese and ASCII text line up.
pub fn pad(text: &str, width: usize) -> String {
    use unicode_width::UnicodeWidthStr;
    let mut s = ellipsize(text, width);
    let w = s.width();
    s.extend(std::iter::repeat_n(' ', width.saturating_sub(w)));
    s
}
