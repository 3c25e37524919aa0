//! The outbox, journal and code book against real SQLite files: numbering, receipts,
//! damage recovery, and what survives a restart.

use super::*;
use protocol::CommandId;

fn door(n: u16, open: bool) -> EventBody {
    EventBody::Door {
        box_no: BoxNo::new(n).expect("box"),
        open,
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_moved_aside_and_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("outbox.db"), vec![0x5a; 8192]).expect("garbage");
    let (o, recovered) = Outbox::open_or_recover(dir.path(), Durability::Normal)
        .await
        .expect("a damaged outbox does not stop the agent");
    let r = recovered.expect("the damage is reported");
    assert!(r.cause.contains("not a database"), "{r:?}");
    assert!(r.salvaged.is_empty(), "{r:?}");
    assert!(
        std::path::Path::new(&r.moved_to).exists(),
        "damaged file kept: {r:?}"
    );
    assert!(r.detail().contains("nothing readable"), "{}", r.detail());
    let e = o
        .append(1, vec![door(1, true)])
        .await
        .expect("fresh outbox works");
    assert_eq!(e[0].seq, 1);
    o.close().await;
    // The next start finds a sound file and reports nothing.
    let (o, again) = Outbox::open_or_recover(dir.path(), Durability::Normal)
        .await
        .expect("reopen");
    assert_eq!(again, None);
    assert_eq!(o.last_seq(), 1);
}

/// A damaged index (the journal's primary key): SQLite's quick check fails, the table
/// rows still read, and the fresh outbox keeps the events, the journal (so no command
/// runs twice) and the numbering.
#[tokio::test]
async fn what_still_reads_in_a_damaged_file_is_salvaged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = CommandId::parse("cmd-1").expect("id");
    let root: i64 = {
        let o = Outbox::open(dir.path(), Durability::Normal)
            .await
            .expect("open");
        o.append(1, vec![door(1, true), door(1, false), door(2, true)])
            .await
            .expect("append");
        assert!(
            o.begin_command(&id, BoxNo::new(1).expect("box"), 5)
                .await
                .expect("journal")
        );
        let root = sqlx::query_scalar(
            "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_journal_1'",
        )
        .fetch_one(&o.pool)
        .await
        .expect("index page");
        o.close().await;
        root
    };
    let path = dir.path().join("outbox.db");
    let mut bytes = std::fs::read(&path).expect("read");
    let page = 4096 * (root as usize - 1);
    bytes[page..page + 4096].fill(0xa5);
    std::fs::write(&path, bytes).expect("damage the index");

    let (o, recovered) = Outbox::open_or_recover(dir.path(), Durability::Normal)
        .await
        .expect("recovered");
    let r = recovered.expect("the damage is reported");
    assert!(r.salvaged.contains(&("outbox", 3)), "{r:?}");
    assert!(r.salvaged.contains(&("journal", 1)), "{r:?}");
    assert_eq!(o.read_after(0, 10).await.expect("events").len(), 3);
    assert!(
        !o.begin_command(&id, BoxNo::new(1).expect("box"), 6)
            .await
            .expect("journal"),
        "the journaled command is known: it will not run twice"
    );
    let e = o.append(2, vec![door(3, true)]).await.expect("append");
    assert_eq!(e[0].seq, 4, "numbering continues after the salvaged events");
}

#[tokio::test]
async fn sequence_numbers_survive_restarts_and_receipts() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let o = Outbox::open(dir.path(), Durability::Normal)
            .await
            .expect("open");
        let e = o
            .append(1, vec![door(1, true), door(1, false)])
            .await
            .expect("append");
        assert_eq!(e.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(o.receipt(2).await.expect("receipt"), 2);
        o.close().await;
    }
    let o = Outbox::open(dir.path(), Durability::Normal)
        .await
        .expect("reopen");
    assert_eq!(o.last_seq(), 2);
    let e = o.append(2, vec![door(2, true)]).await.expect("append");
    assert_eq!(e[0].seq, 3, "never reuses a sequence number");
    assert_eq!(o.read_after(0, 10).await.expect("read").len(), 1);
    assert_eq!(o.oldest().await.expect("oldest"), Some(3));
}

#[tokio::test]
async fn journal_remembers_commands_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = CommandId::parse("c1").expect("id");
    let b = BoxNo::new(1).expect("box");
    {
        let o = Outbox::open(dir.path(), Durability::Full)
            .await
            .expect("open");
        assert!(o.begin_command(&id, b, 5).await.expect("begin"));
        assert!(!o.begin_command(&id, b, 6).await.expect("again"));
        o.close().await;
    }
    let o = Outbox::open(dir.path(), Durability::Full)
        .await
        .expect("reopen");
    assert_eq!(o.journal(&id).await.expect("j"), Some(Journal::Executing));
    assert_eq!(
        o.interrupted().await.expect("interrupted"),
        vec![(id.clone(), b)]
    );
    o.finish_command(&id, b, AckStatus::Opened, None, 7)
        .await
        .expect("finish");
    assert_eq!(
        o.journal(&id).await.expect("j"),
        Some(Journal::Done(AckStatus::Opened, None))
    );
    assert!(o.interrupted().await.expect("interrupted").is_empty());
    assert_eq!(
        o.read_after(0, 10).await.expect("read").len(),
        1,
        "durable result event"
    );
}

#[tokio::test]
async fn a_damaged_row_is_sent_as_lost_under_its_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Outbox::open(dir.path(), Durability::Normal)
        .await
        .expect("open");
    o.append(1, vec![door(1, true), door(1, false)])
        .await
        .expect("append");
    sqlx::query("UPDATE outbox SET event = 'garbage' WHERE seq = 1")
        .execute(&o.pool)
        .await
        .expect("damage");
    let events = o.read_after(0, 10).await.expect("read");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(matches!(events[0].body, EventBody::Lost { .. }));
}

#[tokio::test]
async fn renumbering_follows_the_server_mark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Outbox::open(dir.path(), Durability::Normal)
        .await
        .expect("open");
    o.append(1, vec![door(1, true), door(1, false)])
        .await
        .expect("append");
    o.renumber_after(500).await.expect("renumber");
    let seqs: Vec<u64> = o
        .read_after(0, 10)
        .await
        .expect("read")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![501, 502]);
    assert_eq!(o.last_seq(), 502);
}
