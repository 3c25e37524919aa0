//! API tokens: stored as SHA-256 hashes only, with a role, an optional list of sites they are
//! limited to, an expiry and a revocation time. Creation and revocation are audited in the
//! same transaction as the change.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{self, AuditEntry};
use super::{Store, StoreError};

/// A token's public id: the first 16 hex digits of its hash. It names the token in lists,
/// revocations and the audit log without being usable as the token.
pub(super) fn token_id(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

/// A token to store; the token itself is never given to the store, only its hash.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub hash: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    /// None: every site.
    pub sites: Option<&'a [String]>,
    pub expires_at: Option<i64>,
    pub created_by: &'a str,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: String,
    /// The sites this token is limited to; absent: every site.
    pub sites: Option<Vec<String>>,
    pub created_at: i64,
    pub created_by: Option<String>,
    /// Epoch ms after which the token is refused; absent: never.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl TokenRow {
    fn from_row(r: &AnyRow) -> Result<TokenRow, StoreError> {
        let hash: String = r.try_get("token_hash")?;
        let sites: Option<String> = r.try_get("sites")?;
        let sites = sites
            .map(|s| serde_json::from_str::<Vec<String>>(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("token {} sites: {e}", token_id(&hash))))?;
        Ok(TokenRow {
            id: token_id(&hash).to_owned(),
            name: r.try_get("name")?,
            role: r.try_get("role")?,
            sites,
            created_at: r.try_get("created_at")?,
            created_by: r.try_get("created_by")?,
            expires_at: r.try_get("expires_at")?,
            revoked_at: r.try_get("revoked_at")?,
        })
    }

    /// For the audit log: what the token may do.
    fn describe(&self) -> String {
        let sites = match &self.sites {
            None => "every site".to_owned(),
            Some(s) => format!("sites {}", s.join(",")),
        };
        format!("{} {:?}: {}, {sites}", self.id, self.name, self.role)
    }
}

const COLUMNS: &str =
    "token_hash, name, role, sites, created_at, created_by, expires_at, revoked_at";

impl Store {
    /// Stores a token and audits its creation, in one transaction.
    pub async fn insert_token(&self, t: &NewToken<'_>) -> Result<TokenRow, StoreError> {
        let sites = t
            .sites
            .map(|s| serde_json::to_string(s).unwrap_or_default());
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, name, role, sites, created_at, created_by,
                                     expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(t.hash)
        .bind(t.name)
        .bind(t.role)
        .bind(sites)
        .bind(t.created_at)
        .bind(t.created_by)
        .bind(t.expires_at)
        .execute(&mut *tx)
        .await?;
        let row = TokenRow {
            id: token_id(t.hash).to_owned(),
            name: t.name.to_owned(),
            role: t.role.to_owned(),
            sites: t.sites.map(<[String]>::to_vec),
            created_at: t.created_at,
            created_by: Some(t.created_by.to_owned()),
            expires_at: t.expires_at,
            revoked_at: None,
        };
        let audit_id = uuid::Uuid::new_v4().simple().to_string();
        audit::append(
            &mut tx,
            &AuditEntry {
                id: &audit_id,
                ts: t.created_at,
                actor: t.created_by,
                action: "token_created",
                reason: Some(&row.describe()),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// The token with this hash, revoked or expired included (the caller says which).
    pub async fn token(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1"
        )))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(TokenRow::from_row).transpose()
    }

    /// Every token, newest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at DESC, token_hash"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TokenRow::from_row).collect()
    }

    /// Revokes the token with this id and audits it, in one transaction. `None`: no such
    /// token. A token revoked before keeps its first revocation time.
    pub async fn revoke_token(
        &self,
        id: &str,
        by: &str,
        at: i64,
    ) -> Result<Option<TokenRow>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let changed = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1
             WHERE substr(token_hash, 1, 16) = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE substr(token_hash, 1, 16) = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row.as_ref().map(TokenRow::from_row).transpose()? else {
            tx.rollback().await?;
            return Ok(None);
        };
        if changed > 0 {
            let audit_id = uuid::Uuid::new_v4().simple().to_string();
            audit::append(
                &mut tx,
                &AuditEntry {
                    id: &audit_id,
                    ts: at,
                    actor: by,
                    action: "token_revoked",
                    reason: Some(&row.describe()),
                    ..Default::default()
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(row))
    }
}
