//! SMS templates an administrator writes per site and language: text with `{placeholder}`s
//! checked when saved (every name known, `{code}` present, braces balanced, a length an SMS
//! carries), rendered when a code is issued. `{{` and `}}` are literal braces.

use std::fmt;

/// What a template may say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The opening or pickup code (the reason the SMS exists).
    Code,
    /// The case number (办件号).
    Case,
    /// The cabinet's id.
    Cabinet,
    /// The box number.
    Box,
    /// The site's name.
    Site,
    /// Valid until (drop-off, pick-up) or the deadline (supplement), in the site's time zone.
    Until,
}

impl Placeholder {
    pub const ALL: [Placeholder; 6] = [
        Placeholder::Code,
        Placeholder::Case,
        Placeholder::Cabinet,
        Placeholder::Box,
        Placeholder::Site,
        Placeholder::Until,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Code => "code",
            Placeholder::Case => "case",
            Placeholder::Cabinet => "cabinet",
            Placeholder::Box => "box",
            Placeholder::Site => "site",
            Placeholder::Until => "until",
        }
    }

    fn parse(s: &str) -> Option<Placeholder> {
        Placeholder::ALL.into_iter().find(|p| p.name() == s)
    }

    /// `{code}, {case}, …`: the accepted names, for error messages.
    pub fn choices() -> String {
        Placeholder::ALL
            .iter()
            .map(|p| format!("{{{}}}", p.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The longest template: three 70-character Chinese SMS segments, as gateways concatenate.
pub const MAX_CHARS: usize = 210;

/// Why a template was refused, with what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template is empty: write the SMS text with {{code}} where the code goes")]
    Empty,
    #[error("the template has {0} characters; an SMS template may have at most {MAX_CHARS}")]
    TooLong(usize),
    #[error(
        "unknown placeholder {{{0}}} at character {1}: use {choices} (write {{{{ and }}}} for literal braces)",
        choices = Placeholder::choices()
    )]
    Unknown(String, usize),
    #[error(
        "unclosed {{ at character {0}: close the placeholder with }}, or write {{{{ for a literal brace"
    )]
    Unclosed(usize),
    #[error("stray }} at character {0}: write }}}} for a literal brace")]
    Stray(usize),
    #[error("the template has no {{code}}: the citizen needs the code to open the box")]
    NoCode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Slot(Placeholder),
}

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// The values a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    pub code: &'a str,
    pub case: &'a str,
    pub cabinet: &'a str,
    pub box_no: u16,
    pub site: &'a str,
    pub until: &'a str,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let chars = source.chars().count();
        if source.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        if chars > MAX_CHARS {
            return Err(TemplateError::TooLong(chars));
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut it = source.chars().enumerate().peekable();
        while let Some((i, c)) = it.next() {
            match c {
                '{' if it.peek().map(|(_, c)| *c) == Some('{') => {
                    it.next();
                    text.push('{');
                }
                '}' if it.peek().map(|(_, c)| *c) == Some('}') => {
                    it.next();
                    text.push('}');
                }
                '}' => return Err(TemplateError::Stray(i + 1)),
                '{' => {
                    let mut name = String::new();
                    loop {
                        match it.next() {
                            Some((_, '}')) => break,
                            Some((_, '{')) | None => return Err(TemplateError::Unclosed(i + 1)),
                            Some((_, c)) => name.push(c),
                        }
                    }
                    let p = Placeholder::parse(name.trim())
                        .ok_or_else(|| TemplateError::Unknown(name.clone(), i + 1))?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Slot(p));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if !parts.contains(&Part::Slot(Placeholder::Code)) {
            return Err(TemplateError::NoCode);
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// The text as the administrator wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn render(&self, v: &Values<'_>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Slot(Placeholder::Code) => out.push_str(v.code),
                Part::Slot(Placeholder::Case) => out.push_str(v.case),
                Part::Slot(Placeholder::Cabinet) => out.push_str(v.cabinet),
                Part::Slot(Placeholder::Box) => out.push_str(&v.box_no.to_string()),
                Part::Slot(Placeholder::Site) => out.push_str(v.site),
                Part::Slot(Placeholder::Until) => out.push_str(v.until),
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values() -> Values<'static> {
        Values {
            code: "48151623",
            case: "GZ-2026-0005",
            cabinet: "hall-cab-01",
            box_no: 7,
            site: "市民中心政务服务大厅",
            until: "2026-12-05 18:00",
        }
    }

    #[test]
    fn placeholders_are_filled_and_braces_can_be_literal() {
        let t = Template::parse("【政务服务】办件号{case}的开箱码为{code}，请于{until}前到{site}{cabinet}第{box}号箱格交件。{{勿回复}}")
            .expect("valid");
        assert_eq!(
            t.render(&values()),
            "【政务服务】办件号GZ-2026-0005的开箱码为48151623，请于2026-12-05 18:00前到市民中心政务服务大厅hall-cab-01第7号箱格交件。{勿回复}"
        );
    }

    #[test]
    fn a_bad_template_says_what_is_wrong_and_what_to_write() {
        let e = |s: &str| Template::parse(s).expect_err(s).to_string();
        assert_eq!(
            e("code {cod}"),
            "unknown placeholder {cod} at character 6: use {code}, {case}, {cabinet}, {box}, {site}, {until} (write {{ and }} for literal braces)"
        );
        assert!(e("your code {code").starts_with("unclosed { at character 11"));
        assert!(e("code} {code}").starts_with("stray } at character 5"));
        assert!(e("box {box} is ready").contains("no {code}"));
        assert!(e("  ").contains("empty"));
        assert!(e(&format!("{{code}}{}", "长".repeat(MAX_CHARS))).contains("at most 210"));
    }

    proptest! {
        /// Whatever is typed, parsing never panics; what parses renders with the code in it
        /// and renders its literal text unchanged.
        #[test]
        fn any_text_parses_or_is_refused_cleanly(s in "\\PC{0,80}") {
            if let Ok(t) = Template::parse(&s) {
                let out = t.render(&values());
                prop_assert!(out.contains("48151623"));
            }
        }

        #[test]
        fn escaped_text_round_trips(s in "[^{}]{0,40}") {
            let t = Template::parse(&format!("{s}{{{{x}}}} {{code}}")).expect("valid");
            prop_assert_eq!(t.render(&values()), format!("{s}{{x}} 48151623"));
        }
    }
}
