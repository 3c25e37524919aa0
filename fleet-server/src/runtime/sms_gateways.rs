//! SMS through the providers Chinese government deployments use: Alibaba Cloud SMS (SendSms,
//! RPC signature V1, HMAC-SHA1) and Tencent Cloud SMS (SendSms 2021-01-11, TC3-HMAC-SHA256).
//! Both send templates approved in advance under an approved signature name, so each message
//! kind (and language) maps to a template id and the values it takes (`[sms.templates]`).
//!
//! The signing functions are pure and checked against the providers' published examples
//! (`docs/research/sms-gateways.md`); the adapters around them only build the request, send
//! it and classify the answer. Neither provider's SendSms is idempotent: the notification id
//! goes along (Alibaba `OutId`, Tencent `SessionContext`) so a repeat can be traced.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use ring::{digest, hmac};
use serde::Deserialize;

use super::notify::{Notifier, NotifyError, Sms};
pub(crate) use crate::sms_text::TemplateRef;

/// RFC 3986's unreserved characters stay; every other byte is `%XY` in upper case (space is
/// `%20`, never `+`) — what both providers' canonical strings require.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// Templates by message kind, or kind and language (`dropoff`, `dropoff.zh-CN`).
pub(crate) type Templates = BTreeMap<String, TemplateRef>;

/// The template for an SMS: its kind in its language first, then its kind alone.
fn template_for<'a>(templates: &'a Templates, sms: &Sms) -> Result<&'a TemplateRef, NotifyError> {
    let Some(message) = sms.message.as_deref() else {
        return Err(NotifyError::Permanent(
            "this SMS was queued before provider templates were configured (it has text only); \
             it cannot be sent through a template gateway"
                .into(),
        ));
    };
    let lang = sms.lang.as_deref().unwrap_or("");
    templates
        .get(&format!("{message}.{lang}"))
        .or_else(|| templates.get(message))
        .ok_or_else(|| {
            NotifyError::Permanent(format!(
                "no SMS template for {message} ({lang}): add [sms.templates.{message}] to the config"
            ))
        })
}

/// The template's values from the SMS, in the template's order.
fn values(t: &TemplateRef, sms: &Sms) -> Result<Vec<(String, String)>, NotifyError> {
    t.params
        .iter()
        .map(|name| {
            sms.params
                .get(name)
                .map(|v| (name.clone(), v.clone()))
                .ok_or_else(|| {
                    NotifyError::Permanent(format!(
                        "template {} takes {name:?}, which a {} SMS does not carry",
                        t.id,
                        sms.message.as_deref().unwrap_or("text")
                    ))
                })
        })
        .collect()
}

// ------------------------------------------------------------------------------ Alibaba

/// Alibaba RPC signature V1: `Base64(HMAC-SHA1(secret + "&", METHOD&%2F&enc(canonical)))`,
/// where `canonical` is every parameter but `Signature`, sorted by name, `enc(k)=enc(v)`
/// joined by `&`. Returns (canonical query, signature).
pub(crate) fn alibaba_sign(
    method: &str,
    params: &BTreeMap<String, String>,
    secret: &str,
) -> (String, String) {
    // BTreeMap iterates in byte order of the names, the order the provider sorts in.
    let canonical = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let to_sign = format!("{method}&{}&{}", enc("/"), enc(&canonical));
    let key = hmac::Key::new(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        format!("{secret}&").as_bytes(),
    );
    let tag = hmac::sign(&key, to_sign.as_bytes());
    use base64::Engine as _;
    (
        canonical,
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
    )
}

/// Alibaba Cloud SMS (dysmsapi 2017-05-25).
pub(crate) struct Alibaba {
    pub client: reqwest::Client,
    /// `https://dysmsapi.aliyuncs.com` (or a stand-in's address in tests).
    pub endpoint: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub sign_name: String,
    pub region: String,
    pub templates: Templates,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AlibabaAnswer {
    code: Option<String>,
    message: Option<String>,
}

impl Alibaba {
    /// The signed query of one SendSms request at `now_ms` with `nonce`.
    pub(crate) fn query(
        &self,
        id: &str,
        sms: &Sms,
        now_ms: i64,
        nonce: &str,
    ) -> Result<String, NotifyError> {
        let t = template_for(&self.templates, sms)?;
        let values: serde_json::Map<String, serde_json::Value> = values(t, sms)?
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::from(v)))
            .collect();
        let mut params: BTreeMap<String, String> = [
            ("AccessKeyId", self.access_key_id.as_str()),
            ("Action", "SendSms"),
            ("Format", "JSON"),
            ("OutId", id),
            ("PhoneNumbers", sms.to.as_str()),
            ("RegionId", self.region.as_str()),
            ("SignName", self.sign_name.as_str()),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", nonce),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", t.id.as_str()),
            ("Version", "2017-05-25"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        params.insert("Timestamp".into(), utc(now_ms, "%Y-%m-%dT%H:%M:%SZ")?);
        if !values.is_empty() {
            params.insert(
                "TemplateParam".into(),
                serde_json::Value::Object(values).to_string(),
            );
        }
        let (canonical, signature) = alibaba_sign("GET", &params, &self.access_key_secret);
        Ok(format!("Signature={}&{canonical}", enc(&signature)))
    }
}

impl Notifier for Alibaba {
    async fn send(&self, id: &str, sms: &Sms) -> Result<(), NotifyError> {
        let nonce = uuid::Uuid::new_v4().to_string();
        let query = self.query(id, sms, crate::clock::now_ms(), &nonce)?;
        let url = format!("{}/?{query}", self.endpoint.trim_end_matches('/'));
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| NotifyError::Transient(format!("Alibaba SMS request failed: {e}")))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let answer: Option<AlibabaAnswer> = serde_json::from_str(&body).ok();
        let code = answer.as_ref().and_then(|a| a.code.clone());
        if status.is_success() && code.as_deref() == Some("OK") {
            return Ok(());
        }
        let message = answer.and_then(|a| a.message).unwrap_or_default();
        let what = format!(
            "Alibaba SMS answered {status} {}: {message}",
            code.as_deref().unwrap_or("(no code)")
        );
        Err(match code.as_deref() {
            // Flow control and the provider's own faults pass; retry with backoff.
            Some(
                "isv.BUSINESS_LIMIT_CONTROL"
                | "isp.SYSTEM_ERROR"
                | "Throttling"
                | "Throttling.User"
                | "ServiceUnavailable"
                | "InternalError",
            ) => NotifyError::Transient(what),
            None if status.is_server_error() || status.as_u16() == 429 => {
                NotifyError::Transient(what)
            }
            _ => NotifyError::Permanent(what),
        })
    }
}

// ------------------------------------------------------------------------------ Tencent

/// The TC3-HMAC-SHA256 `Authorization` header of a POST to `/` with `headers` (lower-case
/// names; every one signed) and `body`, at `timestamp` (Unix seconds), for `service`.
pub(crate) fn tencent_authorization(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    timestamp: i64,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Result<String, NotifyError> {
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{}:{}\n", k.to_lowercase(), v.trim().to_lowercase()))
        .collect();
    let signed = headers
        .keys()
        .map(|k| k.to_lowercase())
        .collect::<Vec<_>>()
        .join(";");
    let request = format!(
        "POST\n/\n\n{canonical_headers}\n{signed}\n{}",
        hex::encode(digest::digest(&digest::SHA256, body))
    );
    let date = utc(timestamp.saturating_mul(1000), "%Y-%m-%d")?;
    let scope = format!("{date}/{service}/tc3_request");
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        hex::encode(digest::digest(&digest::SHA256, request.as_bytes()))
    );
    let mac = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let k_date = mac(format!("TC3{secret_key}").as_bytes(), &date);
    let k_service = mac(k_date.as_ref(), service);
    let k_signing = mac(k_service.as_ref(), "tc3_request");
    let signature = hex::encode(mac(k_signing.as_ref(), &to_sign).as_ref());
    Ok(format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders={signed}, Signature={signature}"
    ))
}

/// Tencent Cloud SMS (sms 2021-01-11).
pub(crate) struct Tencent {
    pub client: reqwest::Client,
    /// `https://sms.tencentcloudapi.com` (or a stand-in's address in tests).
    pub endpoint: String,
    pub secret_id: String,
    pub secret_key: String,
    pub sdk_app_id: String,
    pub sign_name: String,
    pub region: String,
    pub templates: Templates,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TencentAnswer {
    response: TencentResponse,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TencentResponse {
    error: Option<TencentCode>,
    #[serde(default)]
    send_status_set: Vec<TencentCode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TencentCode {
    code: String,
    #[serde(default)]
    message: String,
}

/// A mainland number as E.164 (`+86…`); anything already international as given.
fn e164(phone: &str) -> String {
    let digits = phone.trim();
    if digits.starts_with('+') {
        digits.to_owned()
    } else if let Some(rest) = digits.strip_prefix("0086") {
        format!("+86{rest}")
    } else {
        format!("+86{digits}")
    }
}

impl Tencent {
    /// The headers (Authorization included) and body of one SendSms request.
    pub(crate) fn request(
        &self,
        id: &str,
        sms: &Sms,
        timestamp: i64,
    ) -> Result<(BTreeMap<String, String>, Vec<u8>), NotifyError> {
        let t = template_for(&self.templates, sms)?;
        let params: Vec<String> = values(t, sms)?.into_iter().map(|(_, v)| v).collect();
        let body = serde_json::json!({
            "PhoneNumberSet": [e164(&sms.to)],
            "SmsSdkAppId": self.sdk_app_id,
            "SignName": self.sign_name,
            "TemplateId": t.id,
            "TemplateParamSet": params,
            "SessionContext": id,
        })
        .to_string()
        .into_bytes();
        let host = self
            .endpoint
            .split("://")
            .nth(1)
            .unwrap_or(&self.endpoint)
            .trim_end_matches('/')
            .to_owned();
        let mut signed: BTreeMap<String, String> = BTreeMap::new();
        signed.insert(
            "content-type".into(),
            "application/json; charset=utf-8".into(),
        );
        signed.insert("host".into(), host);
        signed.insert("x-tc-action".into(), "SendSms".into());
        let authorization = tencent_authorization(
            &self.secret_id,
            &self.secret_key,
            "sms",
            timestamp,
            &signed,
            &body,
        )?;
        let mut headers = signed;
        headers.insert("authorization".into(), authorization);
        headers.insert("x-tc-timestamp".into(), timestamp.to_string());
        headers.insert("x-tc-version".into(), "2021-01-11".into());
        headers.insert("x-tc-region".into(), self.region.clone());
        Ok((headers, body))
    }
}

impl Notifier for Tencent {
    async fn send(&self, id: &str, sms: &Sms) -> Result<(), NotifyError> {
        let (headers, body) = self.request(id, sms, crate::clock::now_ms() / 1000)?;
        let mut req = self
            .client
            .post(format!("{}/", self.endpoint.trim_end_matches('/')));
        for (k, v) in &headers {
            // The host reqwest sends is the URL's; the signed one is the same name.
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| NotifyError::Transient(format!("Tencent SMS request failed: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let Ok(answer) = serde_json::from_str::<TencentAnswer>(&text) else {
            let what = format!("Tencent SMS answered {status} with no readable body");
            return Err(if status.is_success() || status.is_server_error() {
                NotifyError::Transient(what)
            } else {
                NotifyError::Permanent(what)
            });
        };
        let r = answer.response;
        let failed = match (r.error, r.send_status_set.into_iter().next()) {
            (Some(e), _) => e,
            (None, Some(s)) if s.code == "Ok" => return Ok(()),
            (None, Some(s)) => s,
            (None, None) => {
                return Err(NotifyError::Transient(
                    "Tencent SMS answered without a status for the number".into(),
                ));
            }
        };
        let what = format!("Tencent SMS answered {}: {}", failed.code, failed.message);
        let transient = failed.code.starts_with("LimitExceeded")
            || failed.code.starts_with("RequestLimitExceeded")
            || failed.code.starts_with("InternalError")
            || failed.code == "AuthFailure.SignatureExpire";
        Err(if transient {
            NotifyError::Transient(what)
        } else {
            NotifyError::Permanent(what)
        })
    }
}

/// `ms` in UTC as `format` (strftime).
fn utc(ms: i64, format: &str) -> Result<String, NotifyError> {
    let at = jiff::Timestamp::from_millisecond(ms)
        .map_err(|e| NotifyError::Transient(format!("the clock reads {ms} ms: {e}")))?;
    Ok(at.strftime(format).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Alibaba's own SendSms example (A1 in the research note).
    #[test]
    fn alibaba_v1_matches_the_published_sendsms_example() {
        let p = params(&[
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", "{\"customer\":\"test\"}"),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ]);
        let (canonical, signature) = alibaba_sign("GET", &p, "testSecret");
        assert_eq!(
            canonical,
            "AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123&PhoneNumbers=15300000001&RegionId=cn-hangzhou&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95%E4%B8%93%E7%94%A8&SignatureMethod=HMAC-SHA1&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466&SignatureVersion=1.0&TemplateCode=SMS_71390007&TemplateParam=%7B%22customer%22%3A%22test%22%7D&Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-05-25"
        );
        assert_eq!(signature, "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
    }

    /// The generic RPC example (A2).
    #[test]
    fn alibaba_v1_matches_the_published_rpc_example() {
        let p = params(&[
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Version", "2014-05-26"),
            ("SignatureVersion", "1.0"),
        ]);
        assert_eq!(
            alibaba_sign("GET", &p, "testsecret").1,
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn percent_encoding_is_rfc3986_not_form_encoding() {
        assert_eq!(enc("a b*c~d+e/f"), "a%20b%2Ac~d%2Be%2Ff");
    }

    fn cvm_headers(action: Option<&str>) -> BTreeMap<String, String> {
        let mut h = params(&[
            ("content-type", "application/json; charset=utf-8"),
            ("host", "cvm.tencentcloudapi.com"),
        ]);
        if let Some(a) = action {
            h.insert("x-tc-action".into(), a.into());
        }
        h
    }

    const CVM_BODY: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;

    /// Tencent's published example, the edition with x-tc-action signed (T1).
    #[test]
    fn tencent_tc3_matches_the_current_published_example() {
        let auth = tencent_authorization(
            "AKID********************************",
            "********************************",
            "cvm",
            1_551_113_065,
            &cvm_headers(Some("DescribeInstances")),
            CVM_BODY.as_bytes(),
        )
        .expect("sign");
        assert_eq!(
            auth,
            "TC3-HMAC-SHA256 Credential=AKID********************************/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host;x-tc-action, Signature=10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"
        );
    }

    /// The `...EXAMPLE` edition (T2): two signed headers, another key.
    #[test]
    fn tencent_tc3_matches_the_example_edition() {
        let auth = tencent_authorization(
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            "cvm",
            1_551_113_065,
            &cvm_headers(None),
            CVM_BODY.as_bytes(),
        )
        .expect("sign");
        assert_eq!(
            auth,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    fn sms(message: Option<&str>, lang: &str) -> Sms {
        Sms {
            to: "13812345678".into(),
            text: "text".into(),
            redacted: None,
            message: message.map(str::to_owned),
            lang: Some(lang.into()),
            params: params(&[("code", "12345678"), ("box", "4"), ("site", "政务大厅")]),
        }
    }

    fn templates() -> Templates {
        [
            (
                "dropoff".to_owned(),
                TemplateRef {
                    id: "SMS_1".into(),
                    params: vec!["code".into(), "box".into()],
                },
            ),
            (
                "dropoff.zh-CN".to_owned(),
                TemplateRef {
                    id: "SMS_2".into(),
                    params: vec!["site".into(), "code".into()],
                },
            ),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn a_template_in_the_sms_language_wins_over_the_plain_one() {
        let t = templates();
        assert_eq!(
            template_for(&t, &sms(Some("dropoff"), "zh-CN"))
                .expect("t")
                .id,
            "SMS_2"
        );
        assert_eq!(
            template_for(&t, &sms(Some("dropoff"), "en")).expect("t").id,
            "SMS_1"
        );
        let Err(NotifyError::Permanent(why)) = template_for(&t, &sms(Some("pickup"), "en")) else {
            panic!("no template must be a permanent failure");
        };
        assert!(why.contains("[sms.templates.pickup]"), "{why}");
        assert!(matches!(
            template_for(&t, &sms(None, "en")),
            Err(NotifyError::Permanent(_))
        ));
    }

    #[test]
    fn tencent_sends_the_values_in_the_template_order_to_an_e164_number() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let g = Tencent {
            client: reqwest::Client::new(),
            endpoint: "https://sms.tencentcloudapi.com".into(),
            secret_id: "id".into(),
            secret_key: "key".into(),
            sdk_app_id: "1400006666".into(),
            sign_name: "政务服务".into(),
            region: "ap-guangzhou".into(),
            templates: templates(),
        };
        let (headers, body) = g
            .request("n1", &sms(Some("dropoff"), "zh-CN"), 1_551_113_065)
            .expect("request");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            body["TemplateParamSet"],
            serde_json::json!(["政务大厅", "12345678"])
        );
        assert_eq!(
            body["PhoneNumberSet"],
            serde_json::json!(["+8613812345678"])
        );
        assert_eq!(body["TemplateId"], "SMS_2");
        assert_eq!(headers["host"], "sms.tencentcloudapi.com");
        assert!(headers["authorization"].contains("SignedHeaders=content-type;host;x-tc-action"));
    }
}
