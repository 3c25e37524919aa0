//! SMS templates and a site's language and time zone in storage, on SQLite and PostgreSQL:
//! set, replaced, listed fleet-wide first, reset, each change audited; the site keeps its
//! language and zone across a rewrite.

use domain::flows::{Flow, SiteKind};
use fleet_server::store::{SiteRow, SmsTemplateRow, Store};
use l10n::Lang;

on_both!(templates_and_site_languages_are_kept_and_audited,);

async fn templates_and_site_languages_are_kept_and_audited(store: Store) {
    let hall = SiteRow {
        id: "hall".into(),
        kind: SiteKind::ServiceHall,
        name: "市民中心政务服务大厅".into(),
        address: String::new(),
        lat: 23.1,
        lon: 113.2,
        lang: Some(Lang::ZhCn),
        time_zone: Some("Asia/Shanghai".into()),
        created_at: 1_000,
        updated_at: 1_000,
    };
    store.upsert_site(&hall, "admin").await.expect("site");
    let got = store.site("hall").await.expect("read").expect("there");
    assert_eq!(
        (got.lang, got.time_zone.as_deref()),
        (Some(Lang::ZhCn), Some("Asia/Shanghai"))
    );

    let row = |site: Option<&str>, body: &str, at: i64| SmsTemplateRow {
        site_id: site.map(str::to_owned),
        lang: Lang::ZhCn,
        flow: Flow::Dropoff,
        body: body.into(),
        updated_by: "admin".into(),
        updated_at: at,
    };
    store
        .set_sms_template(&row(Some("hall"), "开箱码 {code}", 2_000))
        .await
        .expect("site template");
    store
        .set_sms_template(&row(None, "全市 {code}", 2_100))
        .await
        .expect("fleet template");
    store
        .set_sms_template(&row(Some("hall"), "大厅开箱码 {code}", 2_200))
        .await
        .expect("replaced");
    let all = store.sms_templates().await.expect("list");
    assert_eq!(
        all.iter()
            .map(|t| (t.site_id.as_deref(), t.body.as_str()))
            .collect::<Vec<_>>(),
        [(None, "全市 {code}"), (Some("hall"), "大厅开箱码 {code}")]
    );
    assert!(
        store
            .reset_sms_template(Some("hall"), Lang::ZhCn, Flow::Dropoff, "admin", 2_300)
            .await
            .expect("reset")
    );
    assert!(
        !store
            .reset_sms_template(Some("hall"), Lang::ZhCn, Flow::Dropoff, "admin", 2_400)
            .await
            .expect("again"),
        "nothing left to reset"
    );
    assert_eq!(store.sms_templates().await.expect("list").len(), 1);
    let audit = store.audit(None, None, 100).await.expect("audit");
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "sms_template_set").count(),
        3,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "sms_template_reset")
            .count(),
        1,
        "{actions:?}"
    );
}
