//! PostgreSQL's ingest of a batch of plain events (doors, occupancy, outcomes already applied):
//! one statement, planned once, instead of a transaction of a statement per table.
//!
//! Why (BENCHMARKS.md, "On PostgreSQL, against mosquitto"): with ingest lanes the writer no
//! longer waits, PostgreSQL's own CPU is the limit, and a batch of single-event messages cost
//! it five statements — `BEGIN`, the devices, the events, the boxes, `COMMIT` — each parsed
//! and planned anew because a multi-row statement's text changes with its row count. Here each
//! column goes as one array parameter, unpacked by `unnest` in data-modifying `WITH` parts of
//! one statement: its text never changes (sqlx prepares it once per connection), it is its own
//! transaction, and it is one round trip. sqlx's `Any` driver, which the store uses for both
//! databases, binds no arrays and has no `COPY`, so the arrays go in PostgreSQL's text form
//! ([`Array`]) and are cast by the statement. (JSON arrays and `json_to_recordset` were tried
//! first: PostgreSQL then spent a quarter of its time parsing JSON.)

use std::collections::BTreeMap;
use std::fmt::Write as _;

use protocol::{BoxNo, DeviceId, EventBody};

use super::ingest::{IngestBatch, latest_box_fields};
use super::{Store, StoreError, effects};

/// The batch's devices (marks rise), its events (each stored once) and its boxes' newest door
/// and occupancy (a field moves only to a higher sequence number), as in
/// [`Store::ingest_replicated`]'s transaction, and locking rows in its order: device rows
/// first, in the arrays' order (sorted by byte, as Rust sorts ids: the database's collation
/// would order some ids differently), then events, then boxes. PostgreSQL runs data-modifying
/// `WITH` parts in an order of its own, so each part waits for the one before it: a one-time
/// filter on a count of the part before runs that part to completion before its own first
/// row. Two writers of one device (replicas sharing a subscription, a heartbeat flush) then
/// queue on its device row instead of deadlocking. A box field the batch does not move goes
/// with no change time (NULL) and sequence 0: inserted, that is the column's default; on an
/// existing row it changes nothing, whatever sequence is stored.
const PLAIN_BATCH: &str = "
WITH d AS (
    INSERT INTO devices (device_id, created_at, last_seen, acked_seq)
    SELECT x.d, $1, $1, x.m FROM unnest($2::text[], $3::int8[]) AS x(d, m)
    ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen,
        acked_seq = GREATEST(devices.acked_seq, excluded.acked_seq)
    RETURNING 1
), e AS (
    INSERT INTO events (device_id, seq, ts, received_at, kind, box_no, body)
    SELECT x.d, x.s, x.t, $1, x.k, x.n, x.b
    FROM unnest($4::text[], $5::int8[], $6::int8[], $7::text[], $8::int8[], $9::text[])
        AS x(d, s, t, k, n, b)
    WHERE (SELECT count(*) FROM d) >= 0
    ON CONFLICT (device_id, seq) DO NOTHING
    RETURNING 1
), b AS (
    INSERT INTO boxes (device_id, box_no, door_open, door_seq, door_changed_at,
                       occupied, occupied_seq, occupied_changed_at)
    SELECT x.d, x.n, x.o, x.os, x.ot, x.c, x.cs, x.ct
    FROM unnest($10::text[], $11::int8[], $12::int8[], $13::int8[], $14::int8[],
                $15::int8[], $16::int8[], $17::int8[])
        AS x(d, n, o, os, ot, c, cs, ct)
    WHERE (SELECT count(*) FROM e) >= 0
    ON CONFLICT (device_id, box_no) DO UPDATE SET
        door_open = CASE WHEN excluded.door_changed_at IS NOT NULL
                          AND excluded.door_seq > boxes.door_seq
                         THEN excluded.door_open ELSE boxes.door_open END,
        door_changed_at = CASE WHEN excluded.door_changed_at IS NOT NULL
                                AND excluded.door_seq > boxes.door_seq
                               THEN excluded.door_changed_at ELSE boxes.door_changed_at END,
        door_seq = CASE WHEN excluded.door_changed_at IS NOT NULL
                         AND excluded.door_seq > boxes.door_seq
                        THEN excluded.door_seq ELSE boxes.door_seq END,
        occupied = CASE WHEN excluded.occupied_changed_at IS NOT NULL
                         AND excluded.occupied_seq > boxes.occupied_seq
                        THEN excluded.occupied ELSE boxes.occupied END,
        occupied_changed_at = CASE WHEN excluded.occupied_changed_at IS NOT NULL
                                    AND excluded.occupied_seq > boxes.occupied_seq
                                   THEN excluded.occupied_changed_at
                                   ELSE boxes.occupied_changed_at END,
        occupied_seq = CASE WHEN excluded.occupied_changed_at IS NOT NULL
                             AND excluded.occupied_seq > boxes.occupied_seq
                            THEN excluded.occupied_seq ELSE boxes.occupied_seq END
    WHERE (excluded.door_changed_at IS NOT NULL AND excluded.door_seq > boxes.door_seq)
       OR (excluded.occupied_changed_at IS NOT NULL
           AND excluded.occupied_seq > boxes.occupied_seq)
)
SELECT count(*) FROM e";

/// A box's newest door and occupancy in the batch (see [`PLAIN_BATCH`]).
#[derive(Default)]
struct BoxFields {
    door: Option<(bool, u64, i64)>,
    occupied: Option<(bool, u64, i64)>,
}

impl IngestBatch {
    /// Whether the one statement above stores all of it: no snapshots, no gaps, and only
    /// events that add their row and move box sensors — none acted on when new, no command
    /// outcome to move, no restart resizing the cabinet.
    pub(super) fn is_plain(&self) -> bool {
        self.snapshots.is_empty()
            && self.gaps.is_empty()
            && self.events.iter().all(|(_, e)| is_plain(&e.body))
    }
}

fn is_plain(body: &EventBody) -> bool {
    match body {
        EventBody::Started { .. } => false,
        EventBody::CommandResult { status, .. } => *status == protocol::AckStatus::Delivered,
        other => !effects::has_effects(other),
    }
}

impl Store {
    /// Stores a plain batch ([`IngestBatch::is_plain`]) on PostgreSQL in one statement; returns
    /// how many events were new.
    pub(super) async fn ingest_plain_postgres(
        &self,
        conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
        batch: &IngestBatch,
    ) -> Result<u64, StoreError> {
        let mut marks: Vec<(&DeviceId, u64)> = batch.marks.iter().map(|(d, m)| (d, *m)).collect();
        marks.sort();
        let events = &batch.events;
        let (doors, occupancy) = latest_box_fields(events);
        let mut boxes: BTreeMap<(&DeviceId, BoxNo), BoxFields> = BTreeMap::new();
        for (key, latest) in doors {
            boxes.entry(key).or_default().door = Some(latest);
        }
        for (key, latest) in occupancy {
            boxes.entry(key).or_default().occupied = Some(latest);
        }
        let bodies = events
            .iter()
            .map(|(_, e)| serde_json::to_string(&e.body))
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| {
                StoreError::Invalid(format!("an event could not be written as JSON: {e}"))
            })?;
        // Each box's door and occupancy columns: value, seq, change time.
        let columns: Vec<[Columns; 2]> = boxes
            .values()
            .map(|b| [moved(b.door), moved(b.occupied)])
            .collect();
        let column = |i: usize, pick: fn(&Columns) -> Option<i64>| {
            Array::int(columns.iter().map(move |c| pick(&c[i])))
        };
        const DOOR: usize = 0;
        const OCCUPIED: usize = 1;
        let inserted: i64 = sqlx::query_scalar(PLAIN_BATCH)
            .bind(batch.received_at)
            .bind(Array::text(marks.iter().map(|(d, _)| Some(d.as_str()))))
            .bind(Array::int(marks.iter().map(|(_, m)| Some(*m as i64))))
            .bind(Array::text(events.iter().map(|(d, _)| Some(d.as_str()))))
            .bind(Array::int(events.iter().map(|(_, e)| Some(e.seq as i64))))
            .bind(Array::int(events.iter().map(|(_, e)| Some(e.ts))))
            .bind(Array::text(events.iter().map(|(_, e)| Some(e.body.kind()))))
            .bind(Array::int(
                events
                    .iter()
                    .map(|(_, e)| e.body.box_no().map(|b| i64::from(b.get()))),
            ))
            .bind(Array::text(bodies.iter().map(|b| Some(b.as_str()))))
            .bind(Array::text(boxes.keys().map(|(d, _)| Some(d.as_str()))))
            .bind(Array::int(
                boxes.keys().map(|(_, n)| Some(i64::from(n.get()))),
            ))
            // A door not moved goes as closed: inserted, that is the column's default.
            .bind(column(DOOR, |c| Some(c.value.unwrap_or(0))))
            .bind(column(DOOR, |c| Some(c.seq)))
            .bind(column(DOOR, |c| c.at))
            .bind(column(OCCUPIED, |c| c.value))
            .bind(column(OCCUPIED, |c| Some(c.seq)))
            .bind(column(OCCUPIED, |c| c.at))
            .fetch_one(&mut **conn)
            .await?;
        Ok(inserted.max(0) as u64)
    }
}

/// A box field's columns; one the batch did not move has no value, seq 0 and no change time
/// (see [`PLAIN_BATCH`]).
struct Columns {
    value: Option<i64>,
    seq: i64,
    at: Option<i64>,
}

fn moved(field: Option<(bool, u64, i64)>) -> Columns {
    match field {
        Some((v, seq, at)) => Columns {
            value: Some(i64::from(v)),
            seq: seq as i64,
            at: Some(at),
        },
        None => Columns {
            value: None,
            seq: 0,
            at: None,
        },
    }
}

/// A one-dimensional array in PostgreSQL's text form (`{"a","b c",NULL}`), bound as a string
/// and cast by the statement. Every text element is quoted, with `"` and `\` escaped, so no
/// content (commas, braces, spaces, the word NULL) is read as syntax.
struct Array;

impl Array {
    fn text<'a>(items: impl Iterator<Item = Option<&'a str>>) -> String {
        Array::of(items, |out, s| {
            out.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        })
    }

    fn int(items: impl Iterator<Item = Option<i64>>) -> String {
        Array::of(items, |out, n| {
            // Writing to a String cannot fail.
            let _ = write!(out, "{n}");
        })
    }

    /// `{a,NULL,b}`, each present item written by `element`.
    fn of<T>(items: impl Iterator<Item = Option<T>>, element: impl Fn(&mut String, T)) -> String {
        let mut out = String::from("{");
        for (i, item) in items.enumerate() {
            if i > 0 {
                out.push(',');
            }
            match item {
                None => out.push_str("NULL"),
                Some(v) => element(&mut out, v),
            }
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use protocol::{
        AckStatus, BoxNo, CommandId, DeviceId, Event, EventBody, FaultKind, StateSnapshot,
    };

    use super::Array;
    use crate::store::IngestBatch;

    #[test]
    fn only_batches_without_effects_are_plain() {
        let d = DeviceId::parse("cab-1").expect("id");
        let b = BoxNo::new(1).expect("box");
        let of = |body: EventBody| IngestBatch {
            events: vec![(
                d.clone(),
                Event {
                    seq: 1,
                    ts: 0,
                    body,
                },
            )],
            ..IngestBatch::default()
        };
        let outcome = |status| EventBody::CommandResult {
            command_id: CommandId::parse("c-1").expect("id"),
            box_no: b,
            status,
            detail: None,
        };
        assert!(IngestBatch::default().is_plain());
        assert!(
            of(EventBody::Door {
                box_no: b,
                open: true
            })
            .is_plain()
        );
        assert!(
            of(EventBody::Occupancy {
                box_no: b,
                occupied: true
            })
            .is_plain()
        );
        assert!(
            of(EventBody::Lost {
                detail: "torn".into()
            })
            .is_plain()
        );
        assert!(of(outcome(AckStatus::Delivered)).is_plain());
        // A command moved, a cabinet resized, an alarm raised: the transaction's work.
        assert!(!of(outcome(AckStatus::Opened)).is_plain());
        assert!(
            !of(EventBody::Started {
                boxes: 4,
                agent_version: "1".into()
            })
            .is_plain()
        );
        assert!(
            !of(EventBody::Fault {
                box_no: None,
                fault: FaultKind::ForcedOpen,
                active: true,
                evidence: String::new(),
            })
            .is_plain()
        );
        let mut snapshot = of(EventBody::Door {
            box_no: b,
            open: true,
        });
        snapshot.snapshots.push((
            d.clone(),
            StateSnapshot {
                v: 1,
                seq: 2,
                ts: 0,
                boxes: vec![],
            },
        ));
        assert!(!snapshot.is_plain());
        let mut gap = IngestBatch::default();
        gap.gaps.push(crate::store::gaps::Gap {
            device: d,
            first_seq: 1,
            last_seq: 2,
        });
        assert!(!gap.is_plain());
    }

    #[test]
    fn array_text_form_quotes_every_element() {
        assert_eq!(
            Array::text([Some("a"), None, Some(r#"{"k":"x\"y"}, NULL"#)].into_iter()),
            r#"{"a",NULL,"{\"k\":\"x\\\"y\"}, NULL"}"#
        );
        assert_eq!(Array::text(std::iter::empty()), "{}");
        assert_eq!(
            Array::int([Some(-3), None, Some(i64::MAX)].into_iter()),
            "{-3,NULL,9223372036854775807}"
        );
    }
}
