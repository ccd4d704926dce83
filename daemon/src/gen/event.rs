//! One generated event and how it becomes Mixpanel-shaped JSON.
//!
//! An [`Event`] holds only identities and seeds (a few machine words); its properties are drawn while it is
//! serialized, from the user's key (stable per user: platform, `$os`, `$city`, ...: [`super::profile`]) and the
//! event's own detail seed (what depends on the event kind: [`super::details`]). So serializing is a pure function
//! of the value: an at-least-once duplicate is a copy of the `Event` and comes out byte-identical to its original,
//! and the stream keeps no per-user state however many users it has.

use std::fmt::Write as _;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::details::write_details;
use super::kind::EventKind;
use super::profile::{Platform, UserProfile};
use super::rng::Draw;
use super::text::{hex128, hex64, StackStr};

/// One generated event: identities and seeds; see the module docs for why the properties are not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub(crate) kind: EventKind,
    pub(crate) time_ms: i64,
    /// Index of the user in the population (0-based); names `u_...` ids.
    pub(crate) user: u32,
    /// The user's identity key, derived from the seed and `user`: fixes the user's platform, place and id.
    pub(crate) user_key: u64,
    pub(crate) session_key: u64,
    pub(crate) insert_id: u128,
    pub(crate) detail_seed: u64,
    /// The project token written as `token`, unless the stream is project-free.
    pub(crate) token: Option<u128>,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// `properties.time`, epoch milliseconds.
    pub fn time_ms(&self) -> i64 {
        self.time_ms
    }

    /// `properties.$insert_id`: 32 lowercase hex digits, unique per original event.
    pub fn insert_id(&self) -> String {
        hex128(self.insert_id).as_str().to_owned()
    }

    /// `properties.distinct_id`.
    pub fn distinct_id(&self) -> String {
        UserProfile::new(self.user, self.user_key).distinct_id.as_str().to_owned()
    }

    /// The event as a `serde_json::Value`. Its maps are sorted by key (serde_json without `preserve_order`), so
    /// serializing the value does not give the bytes `serde_json::to_writer(&event)` gives; compare values, not text.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("an Event always serializes")
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("event", self.kind.name())?;
        map.serialize_entry("properties", &Properties(self))?;
        map.end()
    }
}

struct Properties<'a>(&'a Event);

impl Serialize for Properties<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ev = self.0;
        let user = UserProfile::new(ev.user, ev.user_key);
        let mut d = Draw::new(ev.detail_seed);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("time", &ev.time_ms)?;
        map.serialize_entry("distinct_id", &user.distinct_id)?;
        map.serialize_entry("$insert_id", &hex128(ev.insert_id))?;
        map.serialize_entry("$session_id", &hex64(ev.session_key))?;
        if let Some(token) = ev.token {
            map.serialize_entry("token", &hex128(token))?;
        }
        user.serialize_into(&mut map)?;
        let page = write_details(&mut map, ev.kind, &mut d, &user)?;
        if user.platform == Platform::Web {
            let mut url = StackStr::<96>::new();
            let _ = write!(url, "https://shop.example.com{page}");
            map.serialize_entry("$current_url", &url)?;
            let referrer = d.pick_weighted(&[
                (None, 40),
                (Some("https://www.google.com/"), 30),
                (Some("https://www.bing.com/"), 5),
                (Some("https://t.co/"), 5),
                (Some("https://www.facebook.com/"), 8),
                (Some("https://news.ycombinator.com/"), 2),
                (Some("$direct"), 10),
            ]);
            map.serialize_entry("$referrer", &referrer)?;
        } else {
            map.serialize_entry("$wifi", &d.chance(0.7))?;
        }
        map.end()
    }
}
