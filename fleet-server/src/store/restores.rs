//! Backups and restores as the database knows them: a copy of an SQLite database taken
//! while the server writes, the schema wiped before a PostgreSQL dump is restored into it,
//! and each restore recorded (when, of a backup taken when) so events lost with it are
//! explained (`crate::backup`).

use sqlx::Row;

use super::{DbKind, Store, StoreError};

/// A restore, as recorded in the database it put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRow {
    pub restored_at: i64,
    /// When the backup was taken: events receipted after it are not in the database.
    pub backup_taken_at: i64,
    pub source: String,
}

impl Store {
    /// A consistent copy of the SQLite database into a new file `path`, while writers go on
    /// (`VACUUM INTO` reads one snapshot).
    pub async fn copy_sqlite_into(&self, path: &std::path::Path) -> Result<(), StoreError> {
        if self.kind != DbKind::Sqlite {
            return Err(StoreError::Invalid(
                "copy_sqlite_into is for SQLite; PostgreSQL is copied with pg_dump".into(),
            ));
        }
        sqlx::query("VACUUM INTO $1")
            .bind(path.display().to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The URL of the PostgreSQL host written to (the primary), password included: for the
    /// PostgreSQL tools a backup runs.
    pub fn primary_url(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Empties the PostgreSQL schema before a dump is restored into it (the restore refuses
    /// while a replica runs).
    pub async fn wipe_for_restore(&self) -> Result<(), StoreError> {
        if self.kind != DbKind::Postgres {
            return Err(StoreError::Invalid(
                "wipe_for_restore is for PostgreSQL".into(),
            ));
        }
        let mut tx = self.writer.begin().await?;
        sqlx::query("DROP SCHEMA public CASCADE")
            .execute(&mut *tx)
            .await?;
        sqlx::query("CREATE SCHEMA public")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the restore, and moves every cabinet's code version past anything issued
    /// since the backup: each gets a new set when it connects and answers it with the codes
    /// the restored database does not know (`codes_applied.spent`/`.dropped`, see
    /// `store::reconcile`).
    pub async fn record_restore(
        &self,
        backup_taken_at: i64,
        restored_at: i64,
        source: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO restores (restored_at, backup_taken_at, source) VALUES ($1, $2, $3)",
        )
        .bind(restored_at)
        .bind(backup_taken_at)
        .bind(source)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE cabinets SET codes_version = CASE WHEN codes_version + 1 > $1
                                                      THEN codes_version + 1 ELSE $1 END",
        )
        .bind(restored_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest restore, if the database was ever restored.
    pub async fn last_restore(&self) -> Result<Option<RestoreRow>, StoreError> {
        let row = sqlx::query(
            "SELECT restored_at, backup_taken_at, source FROM restores ORDER BY restored_at DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(RestoreRow {
                restored_at: r.try_get("restored_at")?,
                backup_taken_at: r.try_get("backup_taken_at")?,
                source: r.try_get("source")?,
            })
        })
        .transpose()
    }
}
