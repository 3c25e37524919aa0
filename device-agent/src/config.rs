//! Agent configuration: typed settings from a TOML file, `LOCKERFLEET_*` variables and flags.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::outbox::Durability;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Device id; must equal the common name of `{certs}/{id}.crt`.
    pub id: String,
    /// Broker address `HOST:PORT`; HOST is also the TLS server name.
    pub server: String,
    /// Folder with `ca.crt`, `{id}.crt` and `{id}.key`.
    pub certs: PathBuf,
    /// Where the outbox and command journal live (and staged releases, under `releases/`).
    pub data_dir: PathBuf,
    /// Public release keys this cabinet accepts agent releases from, one hex key per line
    /// (`release-key.pub` of `fleet-certs release key`); without it, every release is refused.
    pub release_keys: Option<PathBuf>,
    /// A new agent version has this long to connect and pass its self-check before the
    /// supervisor goes back to the version before.
    pub trial_secs: u64,
    /// Run by `device-agent supervise`, which can switch versions (set by the supervisor,
    /// never in a file).
    #[serde(skip)]
    pub supervised: bool,
    /// The version this run is on trial as, when it is (set by the supervisor).
    #[serde(skip)]
    pub trial: Option<String>,
    /// Lock hardware: `fake`, `modbus-tcp://HOST:PORT` (boards behind a Modbus TCP gateway)
    /// or `modbus-rtu:///dev/ttyX?baud=9600` (boards on an RS-485 bus); see `[modbus]`.
    pub hardware: String,
    /// `locker`, or a station device: `kiosk`, `tax_machine`, `printer` (no boxes).
    pub profile: protocol::Profile,
    /// Boxes of a locker (ignored for stations).
    pub boxes: u16,
    /// A heartbeat goes to the server this often.
    pub heartbeat_secs: u64,
    pub keep_alive_secs: u64,
    /// Most events sent and not yet receipted.
    pub window: u64,
    /// Most event batches sent and not yet receipted. 1 (the default): the next batch waits
    /// for the last one's receipt and carries what came meanwhile — at most one round trip of
    /// delay, and server replicas behind an external broker (which deals messages out round
    /// robin) never receive a batch before its predecessor is stored. More pipelines over a
    /// slow link to a single server.
    pub in_flight: usize,
    /// Events per MQTT message.
    pub batch: usize,
    /// Ask the server for a new certificate this many days before the current one expires
    /// (0: never; certificates are issued for two years).
    pub renew_before_days: u64,
    /// Resend from the oldest unreceipted event when no receipt came for this long.
    pub retransmit_after_ms: u64,
    /// Door and occupancy sensors are read this often.
    pub poll_interval_ms: u64,
    /// An unlock pulse whose door does not open within this time is reported jammed.
    pub jam_timeout_ms: u64,
    pub max_backoff_ms: u64,
    pub durability: Durability,
    /// Wrong keypad entries within `keypad_window_secs` that lock the keypad.
    pub keypad_max_failures: u32,
    pub keypad_window_secs: u64,
    /// How long the keypad stays locked after too many wrong entries.
    pub keypad_lockout_secs: u64,
    /// The cabinet counts as busy this long after the last key (a citizen may still be
    /// typing): no install or configuration restart starts meanwhile.
    pub keypad_quiet_secs: u64,
    /// A door open longer than this raises `door_left_open`.
    pub door_open_alarm_secs: u64,
    /// How much the agent logs: 1 error, 2 warn, 3 info, 4 debug, 5 trace; none: the
    /// process's filter (`LOCKERFLEET_LOG`, else info). Central configuration may set it.
    pub log_level: Option<u64>,
    /// A Unix socket where the cabinet's screen application types entries (`code DIGITS`,
    /// `staff CREDENTIAL BOX`) and reads the outcome, on any hardware; none: no socket.
    pub keypad_socket: Option<PathBuf>,
    /// The language a technician reads (`doctor`, remote doctor reports): `en` or `zh-CN`;
    /// none: `LC_ALL` / `LC_MESSAGES` / `LANG`, else English.
    pub lang: Option<l10n::Lang>,
    pub fake: FakeSettings,
    pub modbus: ModbusSettings,
    pub gpio: GpioSettings,
}

/// The `[gpio]` section: one relay line per lock and one input line per door (and per
/// occupancy sensor), box 1 first; line numbers are the chip's offsets (`gpioinfo` lists them).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpioSettings {
    pub lock_lines: Vec<u32>,
    pub door_lines: Vec<u32>,
    /// One per box, or none when the boxes have no occupancy sensors.
    pub occupancy_lines: Vec<u32>,
    /// Relay boards that switch on with a low level.
    pub locks_active_low: bool,
    /// Reed switches wired so that an open door reads low.
    pub doors_active_low: bool,
    pub occupancy_active_low: bool,
    /// Bias of the input lines: `pull-up` (default: a reed switch to ground), `pull-down`,
    /// `none` (external resistors).
    pub bias: GpioBias,
    /// How long a lock's relay stays on.
    pub pulse_ms: u64,
}

impl Default for GpioSettings {
    fn default() -> Self {
        GpioSettings {
            lock_lines: Vec::new(),
            door_lines: Vec::new(),
            occupancy_lines: Vec::new(),
            locks_active_low: false,
            doors_active_low: false,
            occupancy_active_low: false,
            bias: GpioBias::PullUp,
            pulse_ms: 500,
        }
    }
}

impl GpioSettings {
    /// The input lines, doors then occupancy sensors: what one poll reads.
    pub fn inputs(&self) -> Vec<u32> {
        self.door_lines
            .iter()
            .chain(&self.occupancy_lines)
            .copied()
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpioBias {
    PullUp,
    PullDown,
    None,
}

/// The `[modbus]` section: timing and the register map of the lock boards.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModbusSettings {
    /// A request without an answer within this long is tried again, `retries` times.
    pub timeout_ms: u64,
    pub retries: u32,
    /// How long a lock's coil stays on; 0: write "on" only, for boards that time the pulse.
    pub pulse_ms: u64,
    /// The boards in box order (`[[modbus.boards]]`); none listed: one board, unit 1, box N
    /// on coil N-1 and discrete input N-1.
    pub boards: Vec<BoardSettings>,
}

impl Default for ModbusSettings {
    fn default() -> Self {
        ModbusSettings {
            timeout_ms: 300,
            retries: 2,
            pulse_ms: 500,
            boards: Vec::new(),
        }
    }
}

/// One board on the bus (`[[modbus.boards]]`); its boxes follow the previous board's.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoardSettings {
    /// Modbus unit (slave) id, 1..=247.
    pub unit: u8,
    /// Boxes on this board; the last board may leave it out and take the rest.
    pub boxes: Option<u16>,
    /// Coil pulsed to unlock the board's first box; box k uses `lock_coil + k - 1`.
    pub lock_coil: u16,
    /// Discrete input of the first box's door sensor.
    pub door_input: u16,
    /// What the door input reads when the door is open: 1 (default) or 0.
    pub door_open_level: u8,
    /// Discrete input of the first box's occupancy sensor, if the board has them.
    pub occupancy_input: Option<u16>,
    /// What the occupancy input reads when something is in the box: 1 (default) or 0.
    pub occupied_level: u8,
}

impl Default for BoardSettings {
    fn default() -> Self {
        BoardSettings {
            unit: 1,
            boxes: None,
            lock_coil: 0,
            door_input: 0,
            door_open_level: 1,
            occupancy_input: None,
            occupied_level: 1,
        }
    }
}

/// The lock hardware `hardware` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hardware {
    Fake,
    Modbus(crate::modbus::BusAddress),
    /// A GPIO character device, `gpio:///dev/gpiochip0`.
    Gpio(PathBuf),
}

/// Behaviour of the `fake` hardware (tests, demo, simulator).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeSettings {
    /// A door opened by a pulse closes after this long.
    pub close_after_ms: u64,
    /// Share of unlock pulses that jam, 0.0..=1.0.
    pub jam_rate: f64,
    /// Simulated people changing box occupancy, events per second (0: none).
    pub activity_per_sec: f64,
    /// Stop simulated activity after this many events.
    pub activity_limit: Option<u64>,
    /// Append every unlock pulse to this file, synced (tests of exactly-once pulses).
    pub pulse_log: Option<PathBuf>,
    /// Run with this machine's clock this many ms off (tests of clock handling).
    pub clock_skew_ms: i64,
}

impl Default for FakeSettings {
    fn default() -> Self {
        FakeSettings {
            close_after_ms: 3_000,
            jam_rate: 0.0,
            activity_per_sec: 0.0,
            activity_limit: None,
            pulse_log: None,
            clock_skew_ms: 0,
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            id: String::new(),
            server: "localhost:8883".into(),
            certs: PathBuf::from("certs"),
            data_dir: PathBuf::from("agent-data"),
            release_keys: None,
            trial_secs: 120,
            supervised: false,
            trial: None,
            hardware: "fake".into(),
            profile: protocol::Profile::Locker,
            boxes: 24,
            heartbeat_secs: 30,
            keep_alive_secs: 15,
            window: 2_000,
            in_flight: 1,
            batch: 100,
            renew_before_days: 30,
            retransmit_after_ms: 3_000,
            poll_interval_ms: 50,
            jam_timeout_ms: 1_500,
            max_backoff_ms: 30_000,
            durability: Durability::Full,
            keypad_max_failures: 5,
            keypad_window_secs: 600,
            keypad_lockout_secs: 900,
            keypad_quiet_secs: 60,
            door_open_alarm_secs: 120,
            log_level: None,
            keypad_socket: None,
            lang: None,
            fake: FakeSettings::default(),
            modbus: ModbusSettings::default(),
            gpio: GpioSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] cli::FileError),
    #[error("config value `{key}` {why}")]
    Invalid { key: &'static str, why: String },
}

impl AgentConfig {
    /// The language a technician reads: the configured one, else the environment's.
    pub fn lang(&self) -> l10n::Lang {
        self.lang.unwrap_or_else(l10n::Lang::from_env)
    }

    pub fn from_file(path: &Path) -> Result<AgentConfig, ConfigError> {
        Ok(cli::load_toml(path)?)
    }

    /// `(host, port)` of the first server address.
    pub fn server_addr(&self) -> Result<(String, u16), ConfigError> {
        Ok(self.server_addrs()?.remove(0))
    }

    /// Every server address, in the order the agent tries them: `server` is one `HOST:PORT`
    /// or several, comma-separated (the nodes of a broker cluster). The agent stays on one
    /// while it works and moves to the next when the connection fails.
    pub fn server_addrs(&self) -> Result<Vec<(String, u16)>, ConfigError> {
        let bad = |one: &str| ConfigError::Invalid {
            key: "server",
            why: format!("{one:?} is not HOST:PORT (e.g. localhost:8883; several: a:8883,b:8883)"),
        };
        let mut out = Vec::new();
        for one in self.server.split(',').map(str::trim) {
            let (host, port) = one.rsplit_once(':').ok_or_else(|| bad(one))?;
            let port: u16 = port.parse().map_err(|_| bad(one))?;
            if host.is_empty() || port == 0 {
                return Err(bad(one));
            }
            out.push((host.trim_matches(['[', ']']).to_owned(), port));
        }
        Ok(out)
    }

    /// The lock hardware, parsed from `hardware`.
    pub fn hardware(&self) -> Result<Hardware, ConfigError> {
        if self.hardware == "fake" {
            return Ok(Hardware::Fake);
        }
        if let Some(chip) = self.hardware.strip_prefix("gpio://") {
            if !chip.starts_with("/dev/") {
                return Err(ConfigError::Invalid {
                    key: "hardware",
                    why: format!(
                        "{:?} names no GPIO chip; write gpio:///dev/gpiochip0",
                        self.hardware
                    ),
                });
            }
            return Ok(Hardware::Gpio(PathBuf::from(chip)));
        }
        crate::modbus::BusAddress::parse(&self.hardware)
            .map(Hardware::Modbus)
            .map_err(|why| ConfigError::Invalid {
                key: "hardware",
                why,
            })
    }

    pub fn lockout(&self) -> crate::codes::Lockout {
        crate::codes::Lockout {
            max_failures: self.keypad_max_failures,
            window_ms: self.keypad_window_secs as i64 * 1000,
            lock_ms: self.keypad_lockout_secs as i64 * 1000,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, why: &str| {
            Err(ConfigError::Invalid {
                key,
                why: why.to_owned(),
            })
        };
        if let Err(e) = protocol::DeviceId::parse(&self.id) {
            return Err(ConfigError::Invalid {
                key: "id",
                why: e.to_string(),
            });
        }
        self.server_addr()?;
        let hardware = self.hardware()?;
        if hardware != Hardware::Fake && self.profile.is_station() {
            return bad(
                "hardware",
                "drives locks, but a station device has no boxes; use fake",
            );
        }
        if let Hardware::Gpio(_) = hardware {
            if !(1..=10_000).contains(&self.gpio.pulse_ms) {
                return bad("gpio.pulse_ms", "must be between 1 and 10000");
            }
            if let Err(why) = crate::gpio::check_map(&self.gpio, self.boxes) {
                return Err(ConfigError::Invalid { key: "gpio", why });
            }
        }
        if let Hardware::Modbus(_) = hardware {
            let m = &self.modbus;
            if !(10..=10_000).contains(&m.timeout_ms) {
                return bad("modbus.timeout_ms", "must be between 10 and 10000");
            }
            if m.retries > 10 {
                return bad("modbus.retries", "must be 10 or fewer");
            }
            if m.pulse_ms > 10_000 {
                return bad(
                    "modbus.pulse_ms",
                    "must be 10000 or less (0: the board times it)",
                );
            }
            if let Err(why) = crate::modbus::resolve_boards(m, self.boxes) {
                return Err(ConfigError::Invalid {
                    key: "modbus.boards",
                    why,
                });
            }
        }
        if self.boxes == 0 && !self.profile.is_station() {
            return bad("boxes", "must be at least 1 on a locker");
        }
        if !(1..=3_600).contains(&self.heartbeat_secs) {
            return bad("heartbeat_secs", "must be between 1 and 3600");
        }
        if !(10..=3_600).contains(&self.trial_secs) {
            return bad(
                "trial_secs",
                "must be between 10 and 3600 (a new version needs time to connect)",
            );
        }
        if self.batch == 0 || self.batch > protocol::message::MAX_EVENTS_PER_BATCH {
            return bad("batch", "must be between 1 and 1000");
        }
        if self.window < self.batch as u64 {
            return bad("window", "must be at least `batch`");
        }
        if !(1..=1_000).contains(&self.in_flight) {
            return bad("in_flight", "must be between 1 and 1000 batches");
        }
        if !(0.0..=1.0).contains(&self.fake.jam_rate) {
            return bad("fake.jam_rate", "must be between 0.0 and 1.0");
        }
        if self.fake.activity_per_sec < 0.0 || !self.fake.activity_per_sec.is_finite() {
            return bad("fake.activity_per_sec", "must be 0 or more");
        }
        if !(5..=3_600).contains(&self.keypad_quiet_secs) {
            return bad("keypad_quiet_secs", "must be between 5 and 3600 seconds");
        }
        if self.log_level.is_some_and(|l| !(1..=5).contains(&l)) {
            return bad(
                "log_level",
                "must be 1 (error), 2 (warn), 3 (info), 4 (debug) or 5 (trace)",
            );
        }
        if self.door_open_alarm_secs == 0 {
            return bad("door_open_alarm_secs", "must be at least 1");
        }
        if self.keypad_max_failures == 0 || self.keypad_window_secs == 0 {
            return bad(
                "keypad_max_failures",
                "must be at least 1 (and keypad_window_secs at least 1)",
            );
        }
        if self.poll_interval_ms == 0 || self.keep_alive_secs < 5 {
            return bad(
                "poll_interval_ms",
                "must be at least 1 ms (and keep_alive_secs at least 5)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        let mut c = AgentConfig {
            id: "cab-1".into(),
            ..AgentConfig::default()
        };
        assert_eq!(c.server_addr().expect("ok"), ("localhost".into(), 8883));
        c.validate().expect("valid");
        for bad in ["nope", "host:", ":1", "h:0", "h:99999", "a:1,", "a:1,b"] {
            c.server = bad.into();
            let err = c.validate().expect_err("invalid");
            assert!(err.to_string().contains("HOST:PORT"), "{err}");
        }
        // The nodes of a cluster, tried in order.
        c.server = "node-a:8883, node-b:8884,[::1]:8885".into();
        assert_eq!(
            c.server_addrs().expect("ok"),
            [
                ("node-a".to_owned(), 8883),
                ("node-b".to_owned(), 8884),
                ("::1".to_owned(), 8885)
            ]
        );
        assert_eq!(c.server_addr().expect("ok"), ("node-a".into(), 8883));
    }

    /// The example a technician copies to /etc/lockerfleet/agent.toml is a valid config.
    #[test]
    fn the_shipped_example_config_is_valid() {
        let cfg: AgentConfig =
            toml::from_str(include_str!("../../deploy/agent.toml")).expect("parses");
        cfg.validate().expect("valid");
        assert!(matches!(cfg.hardware(), Ok(Hardware::Modbus(_))));
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/lockerfleet"));
        assert_eq!(
            cfg.keypad_socket,
            Some(PathBuf::from("/run/lockerfleet/keypad.sock"))
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let err = toml::from_str::<AgentConfig>("boxes = 'many'").expect_err("bad");
        assert!(err.to_string().contains("boxes"), "{err}");
        let err = toml::from_str::<AgentConfig>("[fake]\njam = 1").expect_err("unknown");
        assert!(err.to_string().contains("jam"), "{err}");
    }
}
