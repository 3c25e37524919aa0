//! Colour themes, applied to the finished frame: `dark` (the colours the screens draw in),
//! `light` (the same meanings in colours that read on a white background) and `mono` (no
//! colour at all, as `NO_COLOR` asks; bold, dim and reverse stay, and every state already
//! reads from its letter or symbol).

use ratatui::buffer::Buffer;
use ratatui::style::Color;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    #[default]
    Dark,
    Light,
    Mono,
}

impl std::str::FromStr for Theme {
    type Err = String;

    fn from_str(s: &str) -> Result<Theme, String> {
        match s {
            "dark" => Ok(Theme::Dark),
            "light" => Ok(Theme::Light),
            "mono" => Ok(Theme::Mono),
            _ => Err(format!("unknown theme {s:?}: choose dark, light or mono")),
        }
    }
}

impl Theme {
    /// The theme asked for, else `mono` when `NO_COLOR` is set (no-color.org), else dark.
    pub fn choose(explicit: Option<Theme>, no_color: Option<&str>) -> Theme {
        explicit.unwrap_or(match no_color {
            Some(v) if !v.is_empty() => Theme::Mono,
            _ => Theme::Dark,
        })
    }

    fn map(self, c: Color) -> Color {
        match (self, c) {
            (Theme::Dark, c) => c,
            (Theme::Mono, _) => Color::Reset,
            // Light backgrounds: yellow, cyan and grey fade out; darker kin say the same.
            (Theme::Light, Color::Yellow | Color::LightYellow) => Color::Rgb(150, 100, 0),
            (Theme::Light, Color::Cyan | Color::LightCyan) => Color::Blue,
            (Theme::Light, Color::Green | Color::LightGreen) => Color::Rgb(0, 120, 0),
            (Theme::Light, Color::Gray | Color::White) => Color::DarkGray,
            (Theme::Light, c) => c,
        }
    }

    /// Recolours every cell of the frame.
    pub fn apply(self, buf: &mut Buffer) {
        if self == Theme::Dark {
            return;
        }
        for cell in buf.content.iter_mut() {
            cell.fg = self.map(cell.fg);
            cell.bg = self.map(cell.bg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_chooses_mono_unless_a_theme_is_asked_for() {
        assert_eq!(Theme::choose(None, Some("1")), Theme::Mono);
        assert_eq!(Theme::choose(None, Some("")), Theme::Dark);
        assert_eq!(Theme::choose(None, None), Theme::Dark);
        assert_eq!(Theme::choose(Some(Theme::Light), Some("1")), Theme::Light);
        assert_eq!("light".parse::<Theme>(), Ok(Theme::Light));
        assert!("neon".parse::<Theme>().is_err());
    }

    #[test]
    fn mono_leaves_no_colour_and_light_keeps_meanings_readable() {
        use ratatui::style::{Modifier, Style};
        let mut buf = Buffer::empty(ratatui::layout::Rect::new(0, 0, 3, 1));
        buf.set_string(
            0,
            0,
            "!",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        );
        buf.set_string(1, 0, "R", Style::new().fg(Color::Yellow));
        let mut mono = buf.clone();
        Theme::Mono.apply(&mut mono);
        assert!(
            mono.content
                .iter()
                .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
        );
        assert!(mono[(0, 0)].modifier.contains(Modifier::BOLD));
        Theme::Light.apply(&mut buf);
        assert_eq!(buf[(0, 0)].fg, Color::Red);
        assert_eq!(buf[(1, 0)].fg, Color::Rgb(150, 100, 0));
    }
}
