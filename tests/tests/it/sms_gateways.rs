//! SMS through Alibaba Cloud and Tencent Cloud, without any network: a local stand-in for each
//! provider's SendSms checks every request's signature the way the provider documents it
//! (re-implemented here, independently of the server's code), refuses replays and stale
//! clocks, and answers in the provider's own shapes. A reservation's code must arrive through
//! the approved template with its values; a refusal that retrying cannot help must not be
//! retried, and flow control must be.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::flows::{CAB, PHONE, dropoff_at_hall, setup, wait_codes_synced};
use crate::harness::{Api, World, eventually, now_ms, wait_online};

const KEY_ID: &str = "LTAI-test-key-id";
const SECRET: &str = "stand-in-secret-0123456789";

#[derive(Clone, Copy, PartialEq)]
enum Provider {
    Alibaba,
    Tencent,
}

/// What the stand-in received: whether the signature held, and the request's values.
#[derive(Debug, Clone)]
struct Got {
    signature_ok: bool,
    why: String,
    /// Alibaba: the query parameters; Tencent: the JSON body's fields.
    fields: Value,
}

#[derive(Default)]
struct Book {
    got: Vec<Got>,
    /// Error codes to answer with, first first, before answering success again.
    script: Vec<String>,
    nonces: Vec<String>,
}

struct StandIn {
    url: String,
    book: Arc<Mutex<Book>>,
}

impl StandIn {
    async fn start(provider: Provider) -> StandIn {
        let book: Arc<Mutex<Book>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stand-in");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .fallback(match provider {
                Provider::Alibaba => axum::routing::any(alibaba),
                Provider::Tencent => axum::routing::any(tencent),
            })
            .with_state(book.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StandIn {
            url: format!("http://{addr}"),
            book,
        }
    }

    fn got(&self) -> Vec<Got> {
        self.book.lock().expect("lock").got.clone()
    }

    fn answer_next(&self, code: &str) {
        self.book.lock().expect("lock").script.push(code.to_owned());
    }
}

/// RFC 3986 percent-encoding, written out here so the check does not share the server's.
fn rfc3986(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Alibaba's SendSms (RPC, signature V1) as the documentation describes the check.
async fn alibaba(State(book): State<Arc<Mutex<Book>>>, req: Request) -> axum::response::Response {
    let url = reqwest::Url::parse(&format!("http://x{}", req.uri())).expect("uri");
    let mut params: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    let signature = params.remove("Signature").unwrap_or_default();
    let canonical = params
        .iter()
        .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
        .collect::<Vec<_>>()
        .join("&");
    let to_sign = format!("{}&%2F&{}", req.method(), rfc3986(&canonical));
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        format!("{SECRET}&").as_bytes(),
    );
    let tag = base64_decode(&signature);
    let mut why = String::new();
    if ring::hmac::verify(&key, to_sign.as_bytes(), &tag).is_err() {
        why = format!(
            "Specified signature is not matched with our calculation. server string to sign is:{to_sign}"
        );
    }
    let stamp = params.get("Timestamp").cloned().unwrap_or_default();
    let fresh = stamp
        .parse::<jiff::Timestamp>()
        .map(|t| (t.as_millisecond() - now_ms()).abs() < 15 * 60_000)
        .unwrap_or(false);
    if why.is_empty() && !fresh {
        why = format!("Timestamp {stamp:?} is not within 15 minutes of the stand-in's clock");
    }
    let nonce = params.get("SignatureNonce").cloned().unwrap_or_default();
    let mut b = book.lock().expect("lock");
    if why.is_empty() && (nonce.is_empty() || b.nonces.contains(&nonce)) {
        why = format!("SignatureNonce {nonce:?} was used before");
    }
    b.nonces.push(nonce);
    let ok = why.is_empty();
    b.got.push(Got {
        signature_ok: ok,
        why: why.clone(),
        fields: serde_json::to_value(&params).unwrap_or_default(),
    });
    let request_id = "F655A8D5-B967-440B-8683-DAD6FF8DE990";
    if !ok {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"RequestId": request_id, "HostId": "dysmsapi.aliyuncs.com",
                "Code": "SignatureDoesNotMatch", "Message": why}),
            ),
        )
            .into_response();
    }
    if !b.script.is_empty() {
        let code = b.script.remove(0);
        return axum::Json(json!({"RequestId": request_id, "Code": code, "Message": "scripted"}))
            .into_response();
    }
    axum::Json(
        json!({"Code": "OK", "Message": "OK", "BizId": "9006197469364984^0",
        "RequestId": request_id}),
    )
    .into_response()
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let Some(v) = ALPHABET.iter().position(|a| *a == c) else {
            return Vec::new();
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Tencent's SendSms (API 3.0, TC3-HMAC-SHA256) as the documentation describes the check.
async fn tencent(State(book): State<Arc<Mutex<Book>>>, req: Request) -> axum::response::Response {
    let headers = req.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let auth = header("authorization");
    let part = |name: &str| {
        auth.split([' ', ','])
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap_or("")
            .to_owned()
    };
    let (credential, signed, signature) =
        (part("Credential"), part("SignedHeaders"), part("Signature"));
    let timestamp: i64 = header("x-tc-timestamp").parse().unwrap_or(0);
    let date = jiff::Timestamp::from_second(timestamp)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let scope = format!("{date}/sms/tc3_request");
    let mut why = String::new();
    if credential != format!("{KEY_ID}/{scope}") {
        why = format!("Credential {credential:?} is not {KEY_ID}/{scope}");
    }
    let names: Vec<&str> = signed.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"content-type") {
        why = format!("SignedHeaders {signed:?} must include content-type and host");
    }
    let canonical_headers: String = names
        .iter()
        .map(|n| format!("{n}:{}\n", header(n).trim().to_lowercase()))
        .collect();
    let hex_sha = |b: &[u8]| hex::encode(ring::digest::digest(&ring::digest::SHA256, b));
    let request = format!(
        "POST\n/\n\n{canonical_headers}\n{signed}\n{}",
        hex_sha(&body)
    );
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        hex_sha(request.as_bytes())
    );
    let mac = |k: &[u8], d: &str| {
        ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k),
            d.as_bytes(),
        )
    };
    let k = mac(format!("TC3{SECRET}").as_bytes(), &date);
    let k = mac(k.as_ref(), "sms");
    let k = mac(k.as_ref(), "tc3_request");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k.as_ref());
    let tag = hex::decode(&signature).unwrap_or_default();
    if why.is_empty() && ring::hmac::verify(&key, to_sign.as_bytes(), &tag).is_err() {
        why = "The provided credentials could not be validated. Please check your signature is correct.".into();
    }
    if why.is_empty() && (timestamp - now_ms() / 1000).abs() > 300 {
        why = format!("X-TC-Timestamp {timestamp} is more than 5 minutes off");
    }
    let fields: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut b = book.lock().expect("lock");
    let ok = why.is_empty();
    b.got.push(Got {
        signature_ok: ok,
        why: why.clone(),
        fields: fields.clone(),
    });
    let request_id = "a0aabda6-cf91-4f3e-a81f-9198114a2279";
    if !ok {
        return axum::Json(
            json!({"Response": {"Error": {"Code": "AuthFailure.SignatureFailure",
            "Message": why}, "RequestId": request_id}}),
        )
        .into_response();
    }
    let code = if b.script.is_empty() {
        "Ok".to_owned()
    } else {
        b.script.remove(0)
    };
    axum::Json(
        json!({"Response": {"RequestId": request_id, "SendStatusSet": [{
        "Code": code, "Fee": 1, "IsoCode": "CN", "Message": "send success",
        "PhoneNumber": fields["PhoneNumberSet"][0], "SerialNo": "5000:1045710669157053657849499619",
        "SessionContext": fields["SessionContext"]}]}}),
    )
    .into_response()
}

/// The server's `[sms]` settings for `provider` at the stand-in.
fn config(provider: Provider, endpoint: &str) -> String {
    let (name, extra) = match provider {
        Provider::Alibaba => ("alibaba", ""),
        Provider::Tencent => (
            "tencent",
            "sdk_app_id = \"1400006666\"\nregion = \"ap-guangzhou\"\n",
        ),
    };
    format!(
        r#"[sms]
provider = "{name}"
endpoint = "{endpoint}"
access_key_id = "{KEY_ID}"
access_key_secret = "{SECRET}"
sign_name = "市民服务中心"
{extra}
[sms.templates.dropoff]
id = "SMS_DROPOFF"
params = ["code", "box", "until"]

[sms.templates."dropoff.zh-CN"]
id = "SMS_DROPOFF_ZH"
params = ["site", "code", "box"]

[sms.templates.supplement]
id = "SMS_SUPPLEMENT"
params = ["code", "box"]

[sms.templates.pickup]
id = "SMS_PICKUP"
params = ["code", "box", "until"]

[sms.templates.reminder]
id = "SMS_REMINDER"
params = ["box", "until"]

[sms.templates.alarm]
id = "SMS_ALARM"
params = ["severity", "kind", "device", "box", "state"]
"#
    )
}

/// A drop-off at the hall (the flows test's): its code and box.
async fn reserve(platform: &Api, case: &str) -> (String, i64) {
    let r = dropoff_at_hall(platform, case).await;
    (
        r["code"].as_str().expect("code").to_owned(),
        r["box"].as_i64().expect("box"),
    )
}

/// SMS counted with `outcome` (sent, failed).
async fn sms_counted(admin: &Api, outcome: &str) -> f64 {
    admin
        .metric(&format!(
            "lockerfleet_notifications_total{{channel=\"sms\",outcome=\"{outcome}\"}}"
        ))
        .await
}

/// The values a provider request carried, by the template's names.
fn values(provider: Provider, g: &Got) -> (String, String, Vec<String>) {
    match provider {
        Provider::Alibaba => {
            let f = &g.fields;
            let params: Value =
                serde_json::from_str(f["TemplateParam"].as_str().unwrap_or("{}")).expect("json");
            (
                f["TemplateCode"].as_str().unwrap_or("").to_owned(),
                f["PhoneNumbers"].as_str().unwrap_or("").to_owned(),
                ["code", "box", "until"]
                    .iter()
                    .map(|k| params[k].as_str().unwrap_or("").to_owned())
                    .collect(),
            )
        }
        Provider::Tencent => {
            let f = &g.fields;
            (
                f["TemplateId"].as_str().unwrap_or("").to_owned(),
                f["PhoneNumberSet"][0].as_str().unwrap_or("").to_owned(),
                f["TemplateParamSet"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| v.as_str().unwrap_or("").to_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        }
    }
}

async fn sms_through(provider: Provider) {
    let stand_in = StandIn::start(provider).await;
    let world = World::new(&[CAB]);
    let config_file = world.dir.path().join("sms.toml");
    std::fs::write(&config_file, config(provider, &stand_in.url)).expect("config");
    let server = world.server_with(
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--config", &config_file.display().to_string()],
    );
    let admin = server.api();
    let platform = setup(&admin).await;
    let _agent = world.agent_ctl(CAB, server.mqtt, &[]);
    wait_online(&admin, CAB).await;
    wait_codes_synced(&admin).await;

    // A drop-off: its code goes out through the approved template, signed.
    let (code, box_no) = reserve(&platform, "GZ-2026-0101").await;
    let first = eventually(Duration::from_secs(20), "the drop-off SMS", || async {
        stand_in.got().first().cloned()
    })
    .await;
    assert!(first.signature_ok, "{}", first.why);
    let (template, phone, vals) = values(provider, &first);
    assert_eq!(template, "SMS_DROPOFF");
    match provider {
        Provider::Alibaba => assert_eq!(phone, PHONE),
        Provider::Tencent => assert_eq!(phone, format!("+86{PHONE}")),
    }
    assert_eq!(vals[0], code, "the code in the template's values");
    assert_eq!(vals[1], box_no.to_string());
    assert!(!vals[2].is_empty(), "the deadline: {vals:?}");
    eventually(Duration::from_secs(10), "the SMS counted sent", || async {
        (sms_counted(&admin, "sent").await >= 1.0).then_some(())
    })
    .await;

    // The stand-in's check can fail: the same request with another number is refused.
    let tampered = {
        let mut g = first.clone();
        match provider {
            Provider::Alibaba => g.fields["PhoneNumbers"] = json!("13900000000"),
            Provider::Tencent => g.fields["PhoneNumberSet"] = json!(["+8613900000000"]),
        }
        g
    };
    if provider == Provider::Alibaba {
        let mut url = reqwest::Url::parse(&format!("{}/", stand_in.url)).expect("url");
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in tampered.fields.as_object().expect("fields") {
                q.append_pair(k, v.as_str().unwrap_or(""));
            }
            q.append_pair("Signature", "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
        }
        let r = reqwest::get(url).await.expect("tampered request");
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["Code"], "SignatureDoesNotMatch", "{body}");
    }

    // Flow control: retried with backoff, then sent.
    let transient = match provider {
        Provider::Alibaba => "isv.BUSINESS_LIMIT_CONTROL",
        Provider::Tencent => "LimitExceeded.PhoneNumberThirtySecondLimit",
    };
    stand_in.answer_next(transient);
    let before = stand_in.got().len();
    reserve(&platform, "GZ-2026-0102").await;
    eventually(
        Duration::from_secs(30),
        "the limited SMS sent on a retry",
        || async {
            let got = stand_in.got();
            (got.len() >= before + 2 && sms_counted(&admin, "sent").await >= 2.0).then_some(())
        },
    )
    .await;
    assert!(stand_in.got()[before..].iter().all(|g| g.signature_ok));

    // A refusal retrying cannot help: failed at once, asked once.
    let permanent = match provider {
        Provider::Alibaba => "isv.MOBILE_NUMBER_ILLEGAL",
        Provider::Tencent => "InvalidParameterValue.IncorrectPhoneNumber",
    };
    stand_in.answer_next(permanent);
    let before = stand_in.got().len();
    reserve(&platform, "GZ-2026-0103").await;
    eventually(
        Duration::from_secs(20),
        "the refused SMS failed",
        || async { (sms_counted(&admin, "failed").await >= 1.0).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stand_in.got().len(),
        before + 1,
        "a permanent refusal must not be retried"
    );
    drop(server);
}

#[tokio::test]
async fn alibaba_cloud_sms_signed_and_answered_as_the_provider_does() {
    sms_through(Provider::Alibaba).await;
}

#[tokio::test]
async fn tencent_cloud_sms_signed_and_answered_as_the_provider_does() {
    sms_through(Provider::Tencent).await;
}
