//! The data task: the only part of the console that talks to the network. It follows the
//! server's change stream (SSE, reconnecting with backoff), refetches what the screen shows
//! when something changed (at most four times a second), runs the operator's actions, and
//! reports everything to the UI as [`Msg`]s. The UI never waits on it.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::{Action, Msg};
use crate::model::{
    AlarmsList, AuditList, CabinetDetail, CabinetsList, Command, Diagnostic, DiagnosticKind, Fleet,
    Link, Worklist, Worklists,
};
use api_types::config::DeviceConfigs;
use api_types::deployments::DeploymentsList;
use l10n::{Lang, t};

/// The fleet server's HTTP API, as this console's token sees it.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    /// The operator's language, for what the data task reports.
    lang: Lang,
}

impl Client {
    pub fn new(base: &str, token: &str, lang: Lang) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            lang,
        })
    }

    /// The server's error text for a failed request, or the transport's.
    async fn answer(
        &self,
        res: Result<reqwest::Response, reqwest::Error>,
        what: &str,
    ) -> Result<Value, String> {
        let res = res.map_err(|e| format!("{what}: {}", transport(self.lang, &e)))?;
        let status = res.status();
        let body = res.text().await.map_err(|e| format!("{what}: {e}"))?;
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        // The stable code says what went wrong in the operator's language; the server's
        // message (English) adds the particulars.
        let msg = v["error"].as_str().unwrap_or(body.as_str()).to_owned();
        let code = v["code"].as_str().unwrap_or("");
        Err(format!(
            "{what}: {} {} ({msg})",
            status.as_u16(),
            t!(self.lang, "console-api-error", code = code)
        ))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let v = self.answer(res, &format!("GET {path}")).await?;
        serde_json::from_value(v).map_err(|e| {
            let error = e.to_string();
            format!(
                "GET {path}: {}",
                t!(self.lang, "console-api-unexpected", error = error)
            )
        })
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .json(&body)
            .send()
            .await;
        self.answer(res, &format!("POST {path}")).await
    }
}

fn transport(lang: Lang, e: &reqwest::Error) -> String {
    if e.is_connect() {
        t!(lang, "console-net-cannot-connect")
    } else if e.is_timeout() {
        t!(lang, "console-net-timeout")
    } else {
        e.to_string()
    }
}

/// `GET /api/v1/audit`'s answer.
/// What the change stream tells the fetch loop.
#[derive(Debug)]
enum Notice {
    Connected,
    Changed,
    Command(String),
}

/// Runs until cancelled or the UI goes away.
pub async fn run(
    client: Client,
    mut actions: mpsc::Receiver<Action>,
    msgs: mpsc::Sender<Msg>,
    cancel: CancellationToken,
) {
    let (notice_tx, mut notices) = mpsc::channel(256);
    let stream = tokio::spawn(follow(
        client.clone(),
        notice_tx,
        msgs.clone(),
        cancel.clone(),
    ));
    match client.get::<Value>("/api/v1/me").await {
        Ok(me) => {
            let s = |k: &str| me[k].as_str().unwrap_or("?").to_owned();
            let _ = msgs.send(Msg::Me(s("name"), s("role"))).await;
        }
        Err(e) => {
            let hint = t!(client.lang, "console-check-token");
            let _ = msgs.send(Msg::Error(format!("{e} {hint}"))).await;
        }
    }
    let mut site: Option<String> = None;
    let mut cabinet: Option<String> = None;
    let mut watched: Option<String> = None;
    // The fleet screen is on, with its selected deployment.
    let mut fleet: Option<Option<String>> = None;
    let mut dirty = true;
    let mut fast = tokio::time::interval(Duration::from_millis(250));
    fast.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A safety net under the stream: everything is refetched every 15 s anyway.
    let mut slow = tokio::time::interval(Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            a = actions.recv() => match a {
                None | Some(Action::Quit) => break,
                Some(Action::Refresh) => dirty = true,
                Some(Action::Site(s)) => {
                    site = Some(s.clone());
                    fetch_site(&client, &s, &msgs).await;
                }
                Some(Action::Cabinet(c)) => {
                    cabinet = Some(c.clone());
                    fetch_cabinet(&client, &c, &msgs).await;
                }
                Some(Action::Usage) => fetch_usage(&client, &msgs).await,
                Some(Action::Locate { device }) => {
                    let found = client
                        .get::<CabinetDetail>(&format!("/api/v1/cabinets/{device}"))
                        .await
                        .map(|c| crate::app::Found {
                            device: c.cabinet.id,
                            site: c.cabinet.site_id,
                            box_no: None,
                        });
                    let _ = msgs.send(Msg::Found(found)).await;
                }
                Some(Action::FindCase { case }) => {
                    let found = find_case(&client, &case).await;
                    let _ = msgs.send(Msg::Found(found)).await;
                }
                Some(Action::Planning) => {
                    let answer = client
                        .get::<api_types::planning::PlanAnswer>("/api/v1/planning/recommendations")
                        .await;
                    let existing = answer
                        .as_ref()
                        .map(|a| a.existing_sites.clone())
                        .unwrap_or_default();
                    let _ = msgs.send(Msg::Plan(answer.map(|a| a.plan))).await;
                    // The map's points: without them the map shows the sites alone.
                    let demand = client
                        .get::<api_types::planning::DemandList>("/api/v1/planning/demand")
                        .await
                        .map(|d| d.points)
                        .unwrap_or_default();
                    let _ = msgs
                        .send(Msg::PlanMap(crate::model::PlanMap { demand, existing }))
                        .await;
                }
                Some(Action::Open { device, box_no, reason }) => {
                    let r = open(&client, &device, box_no, &reason).await;
                    watched = r.as_ref().ok().map(|c| c.command_id.clone());
                    let _ = msgs.send(Msg::Opened(r)).await;
                }
                Some(Action::Fleet { watch, selected }) => {
                    fleet = watch.then(|| selected.clone());
                    if watch {
                        fetch_fleet(&client, selected.as_deref(), &msgs).await;
                    }
                }
                Some(Action::Deploy { id, act, note }) => {
                    let body = if note.is_empty() { json!({}) } else { json!({ "note": note }) };
                    let r = client
                        .post(&format!("/api/v1/deployments/{id}/{}", act.as_str()), body)
                        .await
                        .map(|_| id);
                    let _ = msgs.send(Msg::Deployed(r)).await;
                    if let Some(sel) = &fleet {
                        fetch_fleet(&client, sel.as_deref(), &msgs).await;
                    }
                }
                Some(Action::Diagnose { device, kind, request }) => {
                    // Its own task: the cabinet may take seconds to answer, and the screen
                    // keeps refreshing meanwhile.
                    tokio::spawn(diagnose(client.clone(), device, kind, request, msgs.clone()));
                }
                Some(Action::Ack { alarm_id, note }) => {
                    let r = client
                        .post(&format!("/api/v1/alarms/{alarm_id}/ack"), json!({ "note": note }))
                        .await
                        .map(|_| alarm_id);
                    let _ = msgs.send(Msg::Acked(r)).await;
                    dirty = true;
                }
            },
            n = notices.recv() => match n {
                Some(Notice::Connected) | Some(Notice::Changed) => dirty = true,
                Some(Notice::Command(id)) => {
                    if watched.as_deref() == Some(id.as_str()) {
                        watched = watch(&client, &id, &msgs).await;
                    }
                }
                None => break,
            },
            _ = fast.tick() => {
                // A command in flight is followed even if its notices were lost.
                if let Some(id) = watched.clone() {
                    watched = watch(&client, &id, &msgs).await;
                }
                if dirty {
                    dirty = false;
                    refresh(&client, site.as_deref(), cabinet.as_deref(), &msgs).await;
                    if let Some(sel) = &fleet {
                        fetch_fleet(&client, sel.as_deref(), &msgs).await;
                    }
                }
            }
            _ = slow.tick() => dirty = true,
        }
    }
    stream.abort();
}

/// The fleet screen: deployments, the selected one (or the newest) in detail, drifting devices.
async fn fetch_fleet(client: &Client, selected: Option<&str>, msgs: &mpsc::Sender<Msg>) {
    let fleet = async {
        let list: DeploymentsList = client.get("/api/v1/deployments").await?;
        let pick = selected
            .filter(|id| list.deployments.iter().any(|d| d.id == *id))
            .or_else(|| list.deployments.first().map(|d| d.id.as_str()));
        let detail = match pick {
            Some(id) => Some(client.get(&format!("/api/v1/deployments/{id}")).await?),
            None => None,
        };
        let drift: DeviceConfigs = client.get("/api/v1/config/devices?drift=true").await?;
        Ok::<_, String>(Fleet {
            deployments: list.deployments,
            detail,
            drift: drift.devices,
        })
    }
    .await;
    let _ = msgs.send(Msg::Fleet(fleet)).await;
}

/// How long the server holds a diagnostics request for the answer (under the 10 s timeout).
const DIAG_WAIT_SECS: u32 = 8;
/// How long the console keeps looking for an answer after that.
const DIAG_FOLLOW: Duration = Duration::from_secs(60);

/// Asks a cabinet for diagnostics (or reads the newest answer) and reports each state of the
/// request until it is answered, expired, or the console stops looking.
async fn diagnose(
    client: Client,
    device: String,
    kind: DiagnosticKind,
    request: bool,
    msgs: mpsc::Sender<Msg>,
) {
    let path = format!("/api/v1/devices/{device}/diagnostics");
    let first: Result<Diagnostic, String> = if request {
        client
            .post(
                &path,
                json!({ "kind": kind.as_str(), "wait_secs": DIAG_WAIT_SECS }),
            )
            .await
            .and_then(|v| {
                serde_json::from_value(v)
                    .map_err(|e| format!("POST {path}: unexpected answer: {e}"))
            })
    } else {
        newest_answered(&client, &path, kind).await
    };
    let mut pending = first
        .as_ref()
        .ok()
        .filter(|d| d.state == "pending")
        .map(|d| d.id.clone());
    let _ = msgs
        .send(Msg::Diagnosis {
            device: device.clone(),
            result: first,
        })
        .await;
    let until = tokio::time::Instant::now() + DIAG_FOLLOW;
    while let Some(id) = pending.take() {
        if tokio::time::Instant::now() > until || msgs.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now: Result<Diagnostic, String> = client.get(&format!("{path}/{id}")).await;
        match &now {
            Ok(d) if d.state == "pending" => pending = Some(id),
            _ => {
                let _ = msgs
                    .send(Msg::Diagnosis {
                        device: device.clone(),
                        result: now,
                    })
                    .await;
            }
        }
    }
}

/// The cabinet and box of a case's newest item (one in a box first).
async fn find_case(client: &Client, case: &str) -> Result<crate::app::Found, String> {
    let list = client
        .get::<api_types::items::ItemsList>(&format!("/api/v1/items?case_number={case}"))
        .await?;
    let item = list
        .items
        .iter()
        .find(|i| i.state == api_types::ItemState::InBox)
        .or_else(|| list.items.first())
        .ok_or_else(|| t!(client.lang, "console-cmd-no-case", case = case))?;
    Ok(crate::app::Found {
        device: item.device_id.clone(),
        site: item.site_id.clone(),
        box_no: Some(item.box_no),
    })
}

/// A viewer's read: the newest answered request of this kind, with its report.
async fn newest_answered(
    client: &Client,
    path: &str,
    kind: DiagnosticKind,
) -> Result<Diagnostic, String> {
    let list: api_types::diagnostics::Diagnostics = client.get(path).await?;
    let Some(d) = list
        .diagnostics
        .into_iter()
        .find(|d| d.kind == kind && d.state == "answered")
    else {
        return Err(t!(
            client.lang,
            "console-diag-no-answer",
            kind = kind.as_str()
        ));
    };
    client.get(&format!("{path}/{}", d.id)).await
}

/// Fetches a watched command; keeps watching until it is final.
async fn watch(client: &Client, id: &str, msgs: &mpsc::Sender<Msg>) -> Option<String> {
    match client
        .get::<Command>(&format!("/api/v1/commands/{id}"))
        .await
    {
        Ok(c) => {
            let done = c.is_final();
            let _ = msgs.send(Msg::Command(c)).await;
            (!done).then(|| id.to_owned())
        }
        Err(e) => {
            let _ = msgs.send(Msg::Error(e)).await;
            Some(id.to_owned())
        }
    }
}

async fn open(client: &Client, device: &str, box_no: u16, reason: &str) -> Result<Command, String> {
    let v = client
        .post(
            &format!("/api/v1/devices/{device}/boxes/{box_no}/open"),
            json!({ "reason": reason }),
        )
        .await?;
    let id = v["command_id"]
        .as_str()
        .ok_or_else(|| t!(client.lang, "console-open-no-command"))?;
    client.get(&format!("/api/v1/commands/{id}")).await
}

async fn fetch_site(client: &Client, site: &str, msgs: &mpsc::Sender<Msg>) {
    match client
        .get::<CabinetsList>(&format!("/api/v1/cabinets?site={site}"))
        .await
    {
        Ok(l) => {
            let _ = msgs.send(Msg::Cabinets(site.to_owned(), l.cabinets)).await;
        }
        Err(e) => {
            let _ = msgs.send(Msg::Error(e)).await;
        }
    }
}

async fn fetch_cabinet(client: &Client, id: &str, msgs: &mpsc::Sender<Msg>) {
    let view = client
        .get::<CabinetDetail>(&format!("/api/v1/cabinets/{id}"))
        .await;
    let audit = client
        .get::<AuditList>(&format!("/api/v1/audit?device={id}&limit=100"))
        .await;
    match (view, audit) {
        (Ok(v), Ok(a)) => {
            let _ = msgs.send(Msg::Cabinet(v, a.entries)).await;
        }
        (Err(e), _) | (_, Err(e)) => {
            let _ = msgs.send(Msg::Error(e)).await;
        }
    }
}

/// Refetches everything a screen may show; failures go to the status line.
async fn refresh(
    client: &Client,
    site: Option<&str>,
    cabinet: Option<&str>,
    msgs: &mpsc::Sender<Msg>,
) {
    let mut errors = Vec::new();
    match client.get("/api/v1/overview").await {
        Ok(o) => {
            let _ = msgs.send(Msg::Overview(o)).await;
        }
        Err(e) => errors.push(e),
    }
    match client
        .get::<AlarmsList>("/api/v1/alarms?state=open&limit=1000")
        .await
    {
        Ok(a) => {
            let _ = msgs.send(Msg::Alarms(a.alarms)).await;
        }
        Err(e) => errors.push(e),
    }
    let mut lists = Worklists::default();
    for (name, list) in [
        ("collect", &mut lists.collect),
        ("deposit", &mut lists.deposit),
        ("overdue", &mut lists.overdue),
    ] {
        match client
            .get::<Worklist>(&format!("/api/v1/worklists/{name}"))
            .await
        {
            Ok(w) => *list = w.items.into_iter().map(|i| i.item).collect(),
            Err(e) => errors.push(e),
        }
    }
    let _ = msgs.send(Msg::Worklists(lists)).await;
    match client.get::<AuditList>("/api/v1/audit?limit=500").await {
        Ok(a) => {
            let _ = msgs.send(Msg::Audit(a.entries)).await;
        }
        Err(e) => errors.push(e),
    }
    if let Some(s) = site {
        fetch_site(client, s, msgs).await;
    }
    if let Some(c) = cabinet {
        fetch_cabinet(client, c, msgs).await;
    }
    if let Some(e) = errors.into_iter().next() {
        let _ = msgs.send(Msg::Error(e)).await;
    }
}

/// Follows `GET /api/v1/stream`, reconnecting with backoff (1 s doubling to 10 s).
async fn follow(
    client: Client,
    notices: mpsc::Sender<Notice>,
    msgs: mpsc::Sender<Msg>,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let _ = msgs.send(Msg::Link(Link::Connecting)).await;
        let res = client
            .http
            .get(format!("{}/api/v1/stream", client.base))
            .bearer_auth(&client.token)
            .send()
            .await;
        let why = match res {
            Ok(r) if r.status().is_success() => {
                backoff = Duration::from_secs(1);
                let _ = msgs.send(Msg::Link(Link::Live)).await;
                let _ = notices.send(Notice::Connected).await;
                read_events(r, &notices, client.lang).await
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                format!(
                    "{status} {}",
                    body["error"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| t!(client.lang, "console-stream-refused"))
                )
            }
            Err(e) => transport(client.lang, &e),
        };
        let _ = msgs.send(Msg::Link(Link::Down(why))).await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Reads SSE frames until the stream ends; returns why it ended.
async fn read_events(
    mut res: reqwest::Response,
    notices: &mpsc::Sender<Notice>,
    lang: Lang,
) -> String {
    let mut buf = String::new();
    let mut parser = SseParser::default();
    loop {
        // No event and no keep-alive for 30 s: the link is dead even if TCP says otherwise.
        let chunk = match tokio::time::timeout(Duration::from_secs(30), res.chunk()).await {
            Err(_) => return t!(lang, "console-stream-silent"),
            Ok(Err(e)) => return transport(lang, &e),
            Ok(Ok(None)) => return t!(lang, "console-stream-closed"),
            Ok(Ok(Some(c))) => c,
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find('\n') {
            let line: String = buf.drain(..=i).collect();
            if let Some((event, data)) = parser.line(line.trim_end_matches(['\n', '\r'])) {
                let notice = match event.as_str() {
                    "command" => serde_json::from_str::<Value>(&data)
                        .ok()
                        .and_then(|v| v["command_id"].as_str().map(str::to_owned))
                        .map_or(Notice::Changed, Notice::Command),
                    "hello" => continue,
                    _ => Notice::Changed,
                };
                if notices.send(notice).await.is_err() {
                    return String::new(); // the console is stopping
                }
            }
        }
    }
}

/// Server-Sent Events framing: `event:` and `data:` lines, a blank line ends an event,
/// `:` lines are comments (keep-alives).
#[derive(Debug, Default)]
pub struct SseParser {
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds one line (without its newline); returns `(event, data)` when an event ends.
    pub fn line(&mut self, line: &str) -> Option<(String, String)> {
        if line.is_empty() {
            if self.event.is_none() && self.data.is_empty() {
                return None;
            }
            let event = self.event.take().unwrap_or_else(|| "message".into());
            let data = std::mem::take(&mut self.data).join("\n");
            return Some((event, data));
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

/// The usage screen's two answers: every site's last 24 hours, and its last 7 days.
async fn fetch_usage(client: &Client, msgs: &mpsc::Sender<Msg>) {
    let hours = client
        .get::<crate::model::SitesHours>("/api/v1/usage/sites?hours=24")
        .await;
    let saturation = client
        .get::<crate::model::Saturation>("/api/v1/usage/saturation")
        .await;
    match (hours, saturation) {
        (Ok(h), Ok(saturation)) => {
            let usage = crate::model::Usage {
                from: h.from,
                hours: h.sites,
                saturation,
            };
            let _ = msgs.send(Msg::Usage(usage)).await;
        }
        (Err(e), _) | (_, Err(e)) => {
            let _ = msgs.send(Msg::Error(e)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_frames_comments_and_multiline_data() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for l in [
            ": keep-alive",
            "",
            "event: command",
            r#"data: {"command_id":"c1"}"#,
            "",
            "data: a",
            "data:b",
            "",
        ] {
            out.extend(p.line(l));
        }
        assert_eq!(
            out,
            vec![
                ("command".into(), r#"{"command_id":"c1"}"#.into()),
                ("message".into(), "a\nb".into())
            ]
        );
    }
}
