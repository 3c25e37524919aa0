//! The rules of the locker service that need no I/O, in a crate of their own so the compiler
//! keeps them pure: no runtime, no database, no network (checked by `tests/it/main.rs`).
//!
//! - [`alarms`]: the alarm policy: kinds, severities, who is paged, when a cleared alarm
//!   reopens.
//! - [`config`]: central configuration's layers and which wins for a device.
//! - [`deployments`]: rollouts of agent releases in waves: wave sizes, device states,
//!   thresholds.
//! - [`flows`]: site kinds, box sizes, the service flows, the item state machine, the masking
//!   of personal data in logs.
//! - [`labels`]: labels on devices and the selectors that pick devices by them.
//! - [`keypad`]: what a keypad event at a cabinet means: its audit line, and what it asks of
//!   the item it concerns.
//! - [`planner`]: where new locker clusters go and how many boxes they need.
//! - [`planner_input`]: the planner's inputs as the service platform exports them.

/// A closed set of names spelled one way on the wire and in storage: `as_str`, `parse`,
/// `ALL`, `choices`, `Display`, serde, and a `Default` (the first listed).
macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $s:tt),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name { $($(#[$vdoc])* #[serde(rename = $s)] $variant),+ }

        /// The first listed: what a client reads where an older server sent nothing.
        impl Default for $name {
            fn default() -> Self {
                Self::ALL[0]
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
            /// The accepted spellings, for error messages.
            pub fn choices() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}

pub mod alarms;
pub mod config;
pub mod deployments;
pub mod flows;
pub mod keypad;
pub mod labels;
pub mod planner;
pub mod planner_input;
pub mod sms;
