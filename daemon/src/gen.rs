//! `tierd gen`: a deterministic, realistic stream of Mixpanel-shaped events for demos, tests and benchmarks.
//!
//! The stream models an analytics product: a Zipf-distributed population of users (a few heavy users, a long tail)
//! who come back in sessions (a burst of events a minute or two apart), sessions spread over the window along a
//! daily traffic curve (`diurnal`), event names drawn from a Zipf-ranked vocabulary of 30 ([`EventKind`]), and
//! properties typed per event ([`Event`]). On top of the on-time stream it injects the two things a tiering store
//! must cope with: at-least-once duplicates (byte-identical re-sends, same `$insert_id`) and late arrivals (events
//! hours or days older than the events around them).
//!
//! Invariants: the same [`GenConfig`] gives the same bytes; exactly `events` lines come out, of which
//! [`GenConfig::unique_events`] are distinct events; every time is inside the window; on-time events come out in
//! non-decreasing time order, and only late events and duplicates break that order.
//!
//! Files: `cli` (the `tierd gen` arguments and output), `config` (what to generate), `stream` (the [`Generator`]:
//! sessions, late events, duplicates), `diurnal` (the daily curve), `rng` (the seeded generators), and the event's
//! serialization: `event` (one [`Event`] as JSON), `kind` (the vocabulary), `profile` (per-user traits), `details`
//! (per-kind properties) and `text` (allocation-free strings).

mod cli;
mod config;
mod details;
mod diurnal;
mod event;
mod kind;
mod profile;
mod rng;
mod stream;
#[cfg(test)]
mod tests;
mod text;

pub use cli::{run, GenArgs};
pub use config::{GenConfig, GenConfigError, DEFAULT_START_MS};
pub use event::Event;
pub use kind::EventKind;
pub use stream::{Emission, EmissionKind, GenSummary, Generator};
