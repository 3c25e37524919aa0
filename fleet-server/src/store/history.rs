//! The two append-only histories, of items and of alarms.

use sqlx::Row;

use super::{HistoryRow, Store, StoreError};

/// The two append-only histories: of items and of alarms.
#[derive(Debug, Clone, Copy)]
pub(crate) enum History {
    Item,
    Alarm,
}

impl History {
    fn insert_sql(self) -> &'static str {
        match self {
            History::Item => {
                "INSERT INTO item_history (item_id, at, state, actor, detail) VALUES ($1, $2, $3, $4, $5)"
            }
            History::Alarm => {
                "INSERT INTO alarm_history (alarm_id, at, state, actor, detail) VALUES ($1, $2, $3, $4, $5)"
            }
        }
    }

    fn select_sql(self) -> &'static str {
        match self {
            History::Item => {
                "SELECT at, state, actor, detail FROM item_history WHERE item_id = $1 ORDER BY at, state"
            }
            History::Alarm => {
                "SELECT at, state, actor, detail FROM alarm_history WHERE alarm_id = $1 ORDER BY at"
            }
        }
    }
}

/// Appends one history row inside a transaction.
pub(crate) async fn write_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    of: History,
    id: &str,
    at: i64,
    state: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(of.insert_sql())
        .bind(id)
        .bind(at)
        .bind(state)
        .bind(actor)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// The history of an item or alarm, oldest first.
    pub(crate) async fn read_history(
        &self,
        of: History,
        id: &str,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let rows = sqlx::query(of.select_sql())
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryRow {
                    at: r.try_get("at")?,
                    state: r.try_get("state")?,
                    actor: r.try_get("actor")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
