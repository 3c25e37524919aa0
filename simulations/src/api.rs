//! A small client of the fleet server's HTTP API, as operators' tools would use it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api_types::commands::OpenBody;
use serde_json::Value;

#[derive(Clone)]
pub(crate) struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// A finished remote open as the API reports it.
#[derive(Debug, Clone)]
pub(crate) struct OpenOutcome {
    pub command_id: String,
    pub status: String,
    /// Seen by this client: request sent → terminal status visible.
    pub round_trip: Duration,
    /// Seen by this client: request sent → the call answered (the command created, durable,
    /// and handed to the cabinet's session).
    pub answered: Duration,
    /// Recorded by the server: command created → outcome at the door.
    pub server_latency_ms: Option<i64>,
    /// The command as the API returned it last (timestamps of each step).
    pub command: Value,
}

const TERMINAL: [&str; 5] = ["opened", "already_open", "jammed", "failed", "expired"];

impl ApiClient {
    pub(crate) fn new(addr: SocketAddr, token: &str) -> anyhow::Result<ApiClient> {
        ApiClient::from_base(&format!("http://{addr}"), token)
    }

    /// A client of the API at `base`, e.g. `http://127.0.0.1:8080`.
    pub(crate) fn from_base(base: &str, token: &str) -> anyhow::Result<ApiClient> {
        anyhow::ensure!(
            base.starts_with("http://") || base.starts_with("https://"),
            "API address {base:?} must start with http:// or https://"
        );
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .build()
            .context("building HTTP client")?;
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = res.status();
        let body: Value = res
            .json()
            .await
            .with_context(|| format!("GET {path}: body"))?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {body}");
        }
        Ok(body)
    }

    /// Sends `body` with `method`; returns the status and the JSON answer (errors included).
    pub(crate) async fn send<B: serde::Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> anyhow::Result<(u16, Value)> {
        let res = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    /// PUTs a text body (CSV, GeoJSON); fails unless the answer is a success.
    pub(crate) async fn put_text(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> anyhow::Result<Value> {
        self.put(path, content_type, body.to_owned().into_bytes(), None)
            .await
    }

    /// PUTs a binary body (a release, which may take a while); fails unless the answer is a
    /// success.
    pub(crate) async fn put_bytes(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        self.put(
            path,
            "application/octet-stream",
            body,
            Some(Duration::from_secs(120)),
        )
        .await
    }

    async fn put(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        timeout: Option<Duration>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Content-Type", content_type)
            .body(body);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let res = req.send().await.with_context(|| format!("PUT {path}"))?;
        let status = res.status();
        let answer: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("PUT {path}: {status}: {answer}");
        }
        Ok(answer)
    }

    /// The server's `/metrics` text.
    pub(crate) async fn metrics(&self) -> anyhow::Result<String> {
        let res = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .context("GET /metrics")?;
        res.text().await.context("GET /metrics: body")
    }

    pub(crate) fn with_token(&self, token: &str) -> ApiClient {
        ApiClient {
            token: token.to_owned(),
            ..self.clone()
        }
    }

    /// Requests a remote open; returns the command id.
    pub(crate) async fn open(
        &self,
        device: &str,
        box_no: u16,
        reason: &str,
    ) -> anyhow::Result<String> {
        let path = format!("/api/v1/devices/{device}/boxes/{box_no}/open");
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&OpenBody {
                reason: reason.to_owned(),
                ..OpenBody::default()
            })
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = res.status();
        let body: Value = res.json().await?;
        if !status.is_success() {
            bail!("POST {path}: {status}: {body}");
        }
        body["command_id"]
            .as_str()
            .map(str::to_owned)
            .context("response without command_id")
    }

    /// Opens a box and waits for its outcome with the API's long poll (`wait_secs`), so
    /// the time measured is the server's, not a polling interval's.
    pub(crate) async fn open_and_wait(
        &self,
        device: &str,
        box_no: u16,
        reason: &str,
        timeout: Duration,
    ) -> anyhow::Result<OpenOutcome> {
        let started = Instant::now();
        let id = self.open(device, box_no, reason).await?;
        let answered = started.elapsed();
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            let wait = left.as_secs().clamp(1, 30);
            let cmd = self
                .get(&format!("/api/v1/commands/{id}?wait_secs={wait}"))
                .await?;
            let status = cmd["status"].as_str().unwrap_or_default().to_owned();
            if TERMINAL.contains(&status.as_str()) {
                return Ok(OpenOutcome {
                    command_id: id,
                    status,
                    round_trip: started.elapsed(),
                    answered,
                    server_latency_ms: cmd["latency_ms"].as_i64(),
                    command: cmd,
                });
            }
            if started.elapsed() > timeout {
                bail!("command {id} still {status} after {timeout:?}");
            }
        }
    }
}
