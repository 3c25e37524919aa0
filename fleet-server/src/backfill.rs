//! History written into the database at its own times, before the server starts: the demo's
//! last two weeks (`lockerfleet demo --history-days`), and long simulated periods for storage
//! benchmarks.
//!
//! Every step goes through the locker service and the store's own rules — reservations (with
//! their codes, SMS and unmet demand), codes used and staff opens at the keypad, the sweeps
//! that expire items and flag late deposits — so items, their history, the audit and the usage
//! rollups come out as the live path writes them, only dated in the past. What it does not
//! write is device event streams: those carry the agents' own sequence numbers.
//!
//! Nothing here is reachable over the network: backdating is for a database no server runs
//! on yet (`docs/adr/0015-demo-history.md`).

use anyhow::Context;
use protocol::{BoxNo, DeviceId, EventBody};
use tokio::sync::mpsc;

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::secrets::Secrets;
use crate::service::{Reservation, ReservationRequest, Service, ServiceError};
use crate::store::{Presence, SiteRow, Store};
use domain::flows::Size;

/// The database of a server that is not running, written at given times. Calls come in
/// time order: each acts on the database as it is then, as the live server acts on the
/// present (a box freed "later" is free to the next reservation written).
pub struct Backfill {
    service: Service,
}

impl Backfill {
    /// Opens (and on first use creates) the database and master secret of `cfg`, as
    /// [`crate::start`] would. No webhooks are queued: the service platform made this
    /// history, it need not be told it.
    pub async fn open(cfg: &ServerConfig) -> anyhow::Result<Backfill> {
        cfg.validate()?;
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
        let (store, secrets) = crate::open_storage(cfg).await?;
        Ok(Backfill::new(store, secrets, cfg))
    }

    /// On a database and master secret already open; the service settings (code windows,
    /// time zone) from `cfg`.
    pub fn new(store: Store, secrets: Secrets, cfg: &ServerConfig) -> Backfill {
        // Nobody receives code sets: no cabinet is connected, and each gets its whole set
        // when it connects to the server started afterwards.
        let (codes, _) = mpsc::channel(1);
        Backfill {
            service: Service {
                store: store.with_webhooks(false),
                secrets,
                settings: crate::service_settings(cfg),
                codes,
                notify: Default::default(),
                metrics: Metrics::new(Default::default()),
                changes: Default::default(),
            },
        }
    }

    pub fn store(&self) -> &Store {
        &self.service.store
    }

    /// Local midnight of the day `at` falls in (the server's `utc_offset_minutes`).
    pub fn start_of_local_day(&self, at: i64) -> i64 {
        self.service.start_of_local_day(at)
    }

    /// Creates a site as of `at`; one that exists is left as it is (a history never rewrites
    /// the present). `true` when created.
    pub async fn site(&self, site: &SiteRow, at: i64) -> Result<bool, ServiceError> {
        if self.store().site(&site.id).await?.is_some() {
            return Ok(false);
        }
        let row = SiteRow {
            created_at: at,
            updated_at: at,
            ..site.clone()
        };
        Ok(self.store().upsert_site(&row, "backfill").await?)
    }

    /// Configures a cabinet and its boxes as of `at`, so that its boxes count in the usage
    /// rate from then on; one that exists is left as it is. `true` when created.
    pub async fn cabinet(
        &self,
        device: &DeviceId,
        site: &str,
        name: &str,
        boxes: &[(BoxNo, Size, bool)],
        at: i64,
    ) -> Result<bool, ServiceError> {
        if self.store().cabinet(device).await?.is_some() {
            return Ok(false);
        }
        self.store()
            .upsert_cabinet(device, site, name, boxes, at, "backfill")
            .await?;
        Ok(true)
    }

    /// Registers a member of staff as of `at`; one that exists is left as it is.
    #[allow(clippy::too_many_arguments)]
    pub async fn staff(
        &self,
        id: &str,
        name: &str,
        site: Option<&str>,
        credential: &str,
        phone: Option<&str>,
        on_duty: bool,
        at: i64,
    ) -> Result<bool, ServiceError> {
        match self
            .service
            .add_staff_at(id, name, site, credential, phone, on_duty, "backfill", at)
            .await
        {
            Ok(_) => Ok(true),
            Err(ServiceError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A reservation made at `at`: a box, a code (returned, as to the platform) and its SMS,
    /// or [`ServiceError::NoFreeBox`] with the unmet demand recorded at `at`.
    pub async fn reserve(
        &self,
        req: ReservationRequest,
        caller: &str,
        at: i64,
    ) -> Result<Reservation, ServiceError> {
        self.service.reserve_at(req, caller, at).await
    }

    /// What the keypad of `device` sent, as of `at` (the cabinet's clock and the server's
    /// alike): a code used (`CodeUsed`) or refused (`CodeRejected`), a member of staff's card
    /// (`StaffOpen`: collects what was dropped, deposits a pick-up, retrieves an overdue one).
    /// Only keypad, code and fault events; the rules are the ingest's.
    pub async fn keypad(
        &self,
        device: &DeviceId,
        body: &EventBody,
        at: i64,
    ) -> Result<(), ServiceError> {
        self.store()
            .apply_event_effects_at(device, body, at)
            .await?;
        Ok(())
    }

    /// The server's item sweep as of `at`: windows that ended, late deposits, reminders.
    /// Cabinets count as online throughout (no code used offline is still on its way).
    pub async fn sweep(&self, at: i64) -> Result<(), ServiceError> {
        self.service.sweep_once(at, Presence::Assumed).await
    }

    /// Moves SQLite's write-ahead log into the database, as the live server does every few
    /// seconds (it has no automatic checkpoints): call it now and then in a long history, or
    /// the log grows with every write of it.
    pub async fn checkpoint(&self) -> Result<(), ServiceError> {
        Ok(self.store().checkpoint().await?)
    }

    /// Notifications that fell due up to `until` count as sent when they fell due: the people
    /// of a past history had their SMS then, and the server started afterwards must not send
    /// them again. Returns how many.
    pub async fn deliver_notifications(&self, until: i64) -> Result<u64, ServiceError> {
        Ok(self.store().notifications_sent_when_due(until).await?)
    }

    /// Closes the database; the server can start on it now.
    pub async fn close(self) {
        self.service.store.close().await;
    }
}
