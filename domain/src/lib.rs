//! The rules of the locker service that need no I/O, in a crate of their own so the compiler
//! keeps them pure: no runtime, no database, no network (checked by `tests/it/main.rs`).
//!
//! - [`flows`]: site kinds, box sizes, the service flows, the item state machine, the masking
//!   of personal data in logs.
//! - [`keypad`]: what a keypad event at a cabinet means: its audit line, and what it asks of
//!   the item it concerns.
//! - [`planner`]: where new locker clusters go and how many boxes they need.
//! - [`planner_input`]: the planner's inputs as the service platform exports them.

pub mod flows;
pub mod keypad;
pub mod planner;
pub mod planner_input;
