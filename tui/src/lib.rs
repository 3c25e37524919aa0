//! The LockerFleet operator console: a ratatui terminal UI over the fleet server's HTTP API.
//!
//! Three parts, as in gitui and bottom: the data task ([`client`]) is the only one that talks
//! to the network and reports [`app::Msg`]s; [`app::App`] turns keys and messages into state
//! (pure, unit-tested); [`view::draw`] paints the state (pure, snapshot-tested). The loop in
//! [`run`] only moves messages between them and redraws, so the UI never blocks on the
//! network.

pub mod app;
pub mod client;
pub mod model;
pub mod theme;
pub mod view;
pub mod words;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyEventKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::{Action, App, Msg};

/// Local wall-clock time, epoch ms (the header's data age).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How this operator has the console: language, keys, colours, mouse.
#[derive(Debug, Clone)]
pub struct Settings {
    pub lang: l10n::Lang,
    pub keymap: app::keymap::Keymap,
    pub theme: theme::Theme,
    /// Wheel scrolls lists, a click on the navigation line changes screen.
    pub mouse: bool,
    /// The zone clock times are shown in.
    pub time_zone: jiff::tz::TimeZone,
}

impl Settings {
    /// The defaults in `lang` (colours as `NO_COLOR` says).
    pub fn in_lang(lang: l10n::Lang) -> Settings {
        Settings {
            lang,
            keymap: app::keymap::Keymap::default(),
            theme: theme::Theme::choose(None, std::env::var("NO_COLOR").ok().as_deref()),
            mouse: false,
            time_zone: default_time_zone(lang, std::env::var("TZ").ok().as_deref()),
        }
    }
}

/// The zone a console shows times in when its config names none: an IANA `TZ`, else the
/// language's (Asia/Shanghai for zh-CN), else UTC.
pub fn default_time_zone(lang: l10n::Lang, tz: Option<&str>) -> jiff::tz::TimeZone {
    tz.and_then(|name| jiff::tz::TimeZone::get(name.trim_start_matches(':')).ok())
        .or_else(|| jiff::tz::TimeZone::get(lang.default_time_zone()).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

/// Runs the console on this terminal until the operator quits or `cancel` fires. The terminal
/// is restored on every way out, a panic included (ratatui's hook).
pub async fn run(
    server: &str,
    token: &str,
    settings: Settings,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let lang = settings.lang;
    let client = client::Client::new(server, token, lang)?;
    let (action_tx, action_rx) = mpsc::channel::<Action>(64);
    let (msg_tx, mut msg_rx) = mpsc::channel::<Msg>(1024);
    let data = tokio::spawn(client::run(client, action_rx, msg_tx, cancel.child_token()));

    // Terminal input is read on its own thread: crossterm's read blocks.
    let (key_tx, mut key_rx) = mpsc::channel::<Event>(64);
    let stop = Arc::new(AtomicBool::new(false));
    let reader_stop = stop.clone();
    let reader = std::thread::Builder::new()
        .name("console-input".into())
        .spawn(move || {
            while !reader_stop.load(Ordering::Relaxed) {
                match event::poll(Duration::from_millis(100)) {
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if key_tx.blocking_send(ev).is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    },
                    Ok(false) => {}
                    Err(_) => break,
                }
            }
        })?;

    let mut terminal = ratatui::init();
    let mut app = App::new(server, lang);
    app.keymap = settings.keymap;
    app.theme = settings.theme;
    app.time_zone = settings.time_zone;
    if settings.mouse {
        // Restored with the terminal below; a terminal without mouse reporting ignores it.
        let _ = ratatui::crossterm::execute!(
            std::io::stdout(),
            ratatui::crossterm::event::EnableMouseCapture
        );
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        if let Err(e) = terminal.draw(|f| view::draw(f, &app, now_ms())) {
            break Err(anyhow::Error::from(e).context("drawing the console"));
        }
        let actions = tokio::select! {
            _ = cancel.cancelled() => break Ok(()),
            ev = key_rx.recv() => match ev {
                Some(Event::Key(k)) if k.kind == KeyEventKind::Press => app.on_key(k),
                Some(Event::Mouse(m)) => {
                    let width = terminal.size().map(|s| s.width).unwrap_or(80);
                    app.on_mouse(m, width)
                }
                Some(_) => Vec::new(),
                None => break Ok(()),
            },
            m = msg_rx.recv() => match m {
                Some(m) => {
                    let cabinets = matches!(m, Msg::Cabinets(..));
                    app.on_msg(m, now_ms());
                    let mut next = if cabinets { app.select_cabinet() } else { Vec::new() };
                    next.extend(app.take_actions());
                    next
                }
                None => break Ok(()),
            },
            _ = tick.tick() => Vec::new(),
        };
        for a in actions {
            // A full queue means the data task is busy: the key is dropped, never blocks.
            let _ = action_tx.try_send(a);
        }
        if app.quit {
            break Ok(());
        }
    };
    if settings.mouse {
        let _ = ratatui::crossterm::execute!(
            std::io::stdout(),
            ratatui::crossterm::event::DisableMouseCapture
        );
    }
    ratatui::restore();
    stop.store(true, Ordering::Relaxed);
    let _ = action_tx.try_send(Action::Quit);
    data.abort();
    let _ = reader.join();
    result
}
