//! The catalogue walk: both languages parse, hold the same messages with the same arguments,
//! cover every id the workspace's code uses (and nothing it does not), and follow the
//! glossary; plus how the language is chosen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fluent_syntax::ast;

use super::*;

/// One message as the tests see it: its arguments and all its text (every variant).
#[derive(Debug, Default)]
struct Msg {
    vars: BTreeSet<String>,
    text: String,
    component: &'static str,
}

fn walk_pattern(p: &ast::Pattern<&str>, m: &mut Msg) {
    for e in &p.elements {
        match e {
            ast::PatternElement::TextElement { value } => m.text.push_str(value),
            ast::PatternElement::Placeable { expression } => walk_expr(expression, m),
        }
    }
}

fn walk_expr(e: &ast::Expression<&str>, m: &mut Msg) {
    match e {
        ast::Expression::Select { selector, variants } => {
            walk_inline(selector, m);
            for v in variants {
                m.text.push(' ');
                walk_pattern(&v.value, m);
            }
        }
        ast::Expression::Inline(i) => walk_inline(i, m),
    }
}

fn walk_inline(i: &ast::InlineExpression<&str>, m: &mut Msg) {
    match i {
        ast::InlineExpression::VariableReference { id } => {
            m.vars.insert(id.name.to_owned());
        }
        ast::InlineExpression::FunctionReference { arguments, .. } => {
            for a in &arguments.positional {
                walk_inline(a, m);
            }
        }
        ast::InlineExpression::Placeable { expression } => walk_expr(expression, m),
        ast::InlineExpression::StringLiteral { value } => m.text.push_str(value),
        _ => {}
    }
}

/// Every message of one language by id; parse errors and duplicates fail here.
fn messages(lang: Lang) -> BTreeMap<String, Msg> {
    let mut all = BTreeMap::new();
    for c in lang.catalogues() {
        let resource = match fluent_syntax::parser::parse(c.source) {
            Ok(r) => r,
            Err((_, errors)) => panic!("{lang} {}.ftl does not parse: {errors:?}", c.component),
        };
        for entry in resource.body {
            match entry {
                ast::Entry::Message(message) => {
                    let id = message.id.name.to_owned();
                    assert!(
                        id.starts_with(&format!("{}-", c.component)),
                        "{lang} {}.ftl: {id} should start with `{}-` (one home per message)",
                        c.component,
                        c.component
                    );
                    let value = message
                        .value
                        .unwrap_or_else(|| panic!("{lang} {id} has no value"));
                    let mut m = Msg {
                        component: c.component,
                        ..Msg::default()
                    };
                    walk_pattern(&value, &mut m);
                    assert!(
                        all.insert(id.clone(), m).is_none(),
                        "{lang}: {id} defined twice"
                    );
                }
                ast::Entry::Junk { content } => panic!("{lang} {}: junk {content:?}", c.component),
                _ => {}
            }
        }
    }
    all
}

#[test]
fn both_languages_hold_the_same_messages_with_the_same_arguments() {
    let en = messages(Lang::En);
    let zh = messages(Lang::ZhCn);
    let en_ids: BTreeSet<_> = en.keys().collect();
    let zh_ids: BTreeSet<_> = zh.keys().collect();
    assert_eq!(
        en_ids.difference(&zh_ids).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "untranslated: in en, not in zh-CN"
    );
    assert_eq!(
        zh_ids.difference(&en_ids).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "in zh-CN, not in en"
    );
    for (id, e) in &en {
        let z = &zh[id];
        assert_eq!(
            e.vars, z.vars,
            "{id}: arguments differ between en and zh-CN"
        );
        assert_eq!(e.component, z.component, "{id}: in different files");
    }
}

#[test]
fn a_chinese_message_is_chinese() {
    // A message copied from English and never translated still parses; catch it here. A few
    // are legitimately the same in both (symbols, units, product names): they say so.
    const SAME_IN_BOTH: &[&str] = &[];
    for (id, m) in messages(Lang::ZhCn) {
        let han = m
            .text
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        let letters = m.text.chars().any(|c| c.is_ascii_alphabetic());
        if !han && letters && !SAME_IN_BOTH.contains(&id.as_str()) {
            panic!("zh-CN {id} has no Chinese: {:?}", m.text);
        }
    }
}

/// The workspace's Rust sources (every crate), for the ids the code uses.
fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if p.is_dir() {
                if !matches!(name.as_ref(), "target" | ".git" | "fuzz" | "node_modules") {
                    walk(&p, out);
                }
            } else if name.ends_with(".rs") && !p.ends_with("l10n/src/tests.rs") {
                // (This file's own examples are made-up ids.)
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned();
    let mut out = Vec::new();
    walk(&root, &mut out);
    out
}

/// The ids of every `t!(lang, "id", …)` in `src`.
fn used_ids(src: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find("t!(") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + 3..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // print!(, format!(, …
        }
        let Some(open) = rest.find('"') else { break };
        if rest[..open].contains(')') {
            continue; // prose about the macro, not a use of it
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('"') else { break };
        ids.push(after[..close].to_owned());
        rest = &after[close..];
    }
    ids
}

#[test]
fn the_code_uses_only_messages_the_catalogues_have_and_all_of_them() {
    assert_eq!(
        used_ids(
            r#"let a = t!(lang, "console-x"); print!("y"); l10n::t!(app.lang, "demo-y", n = 1);"#
        ),
        ["console-x", "demo-y"]
    );
    let en = messages(Lang::En);
    let mut used = BTreeSet::new();
    let mut missing = Vec::new();
    let files = sources();
    assert!(files.len() > 50, "the workspace's sources were not found");
    for f in files {
        let src = std::fs::read_to_string(&f).expect("read source");
        for id in used_ids(&src) {
            if !en.contains_key(&id) {
                missing.push(format!("{}: {id}", f.display()));
            }
            used.insert(id);
        }
    }
    assert_eq!(missing, Vec::<String>::new(), "ids the catalogues lack");
    let unused: Vec<_> = en.keys().filter(|id| !used.contains(*id)).collect();
    assert_eq!(unused, Vec::<&String>::new(), "messages no code uses");
}

#[derive(serde::Deserialize)]
struct Glossary {
    term: Vec<Term>,
}

#[derive(serde::Deserialize)]
struct Term {
    /// The English forms (singular, plural) as the catalogues write them.
    en: Vec<String>,
    zh: String,
}

fn has_word(text: &str, word: &str) -> bool {
    let text = text.to_lowercase();
    let word = word.to_lowercase();
    text.match_indices(&word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        // `:site` is a console command, typed as it is in every language.
        !before.is_some_and(|c| c.is_alphanumeric() || c == ':')
            && !after.is_some_and(char::is_alphanumeric)
    })
}

#[test]
fn one_term_is_never_translated_two_ways() {
    let glossary: Glossary = toml::from_str(GLOSSARY).expect("glossary.toml");
    assert!(glossary.term.len() >= 15);
    let en = messages(Lang::En);
    let zh = messages(Lang::ZhCn);
    let mut wrong = Vec::new();
    for term in &glossary.term {
        for (id, m) in &en {
            if term.en.iter().any(|w| has_word(&m.text, w)) && !zh[id].text.contains(&term.zh) {
                wrong.push(format!(
                    "{id}: {:?} should say {} ({:?})",
                    term.en[0], term.zh, zh[id].text
                ));
            }
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
}

#[test]
fn the_language_comes_from_the_flag_else_the_environment() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(Lang::from_vars(env(&[("LANG", "zh_CN.UTF-8")])), Lang::ZhCn);
    assert_eq!(
        Lang::from_vars(env(&[("LANG", "zh_CN.UTF-8"), ("LC_ALL", "en_US.UTF-8")])),
        Lang::En
    );
    assert_eq!(
        Lang::from_vars(env(&[("LC_MESSAGES", "zh_CN"), ("LANG", "C")])),
        Lang::ZhCn
    );
    assert_eq!(
        Lang::from_vars(env(&[("LC_ALL", ""), ("LANG", "zh_SG.GB2312")])),
        Lang::ZhCn
    );
    assert_eq!(Lang::from_vars(env(&[("LANG", "fr_FR.UTF-8")])), Lang::En);
    assert_eq!(Lang::from_vars(env(&[])), Lang::En);
    assert_eq!("zh-CN".parse::<Lang>(), Ok(Lang::ZhCn));
    assert_eq!("zh_CN.UTF-8".parse::<Lang>(), Ok(Lang::ZhCn));
    assert_eq!("en".parse::<Lang>(), Ok(Lang::En));
    let e = "fr".parse::<Lang>().expect_err("fr");
    assert_eq!(
        e.to_string(),
        r#"unknown language "fr": choose en or zh-CN"#
    );
    assert!("C".parse::<Lang>().is_err());
    assert_eq!(Lang::choose(Some("zh-CN")), Ok(Lang::ZhCn));
    assert_eq!(Lang::ZhCn.tag(), "zh-CN");
}

#[test]
fn messages_format_with_arguments_plurals_and_no_isolation_marks() {
    let en = t!(Lang::En, "doctor-boxes", count = 1, list = "4");
    assert_eq!(en, "box 4");
    let en = t!(Lang::En, "doctor-boxes", count = 3, list = "1-3");
    assert_eq!(en, "boxes 1-3");
    let zh = t!(Lang::ZhCn, "doctor-boxes", count = 3, list = "1-3");
    assert!(zh.contains("1-3") && zh.contains("箱格"), "{zh}");
    assert!(
        !zh.contains('\u{2068}') && !zh.contains('\u{2069}'),
        "{zh:?}"
    );
    // An id no catalogue has reads as itself (the walk above keeps that from shipping).
    assert_eq!(Lang::ZhCn.text("no-such-message", None), "no-such-message");
}

#[test]
fn every_evidence_sentence_is_said_in_chinese_with_its_values() {
    use protocol::evidence::{Code, say};
    let han = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    for code in Code::all() {
        // Values as the agent and server write them; words of the domain are translated.
        let (values, translated): (Vec<String>, bool) = match code {
            Code::OccupancyAgain | Code::OccupancyChanged => (vec!["occupied".into()], true),
            Code::StationReports | Code::StationClears => {
                (vec!["printer".into(), "paper_low".into()], true)
            }
            Code::ClockOff => (vec!["2 min".into(), "behind".into()], true),
            _ => (
                (0..code.arity()).map(|i| format!("{}", 17 + i)).collect(),
                false,
            ),
        };
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let english = say(code, &refs);
        let zh = evidence(Lang::ZhCn, &english);
        assert!(han(&zh), "{english:?} → {zh:?}");
        assert!(
            translated || values.iter().all(|v| zh.contains(v.as_str())),
            "{english:?} → {zh:?}"
        );
        // English is said the way the agent wrote it (its domain words as words).
        if !translated {
            assert_eq!(evidence(Lang::En, &english), english, "{code:?}");
        }
    }
    assert_eq!(
        evidence(Lang::ZhCn, "the printer reports paper_low"),
        "打印机报告纸张将尽"
    );
    assert_eq!(
        evidence(Lang::ZhCn, "an older agent's words"),
        "an older agent's words"
    );
}
