//! What stays the same for a user across all of their events: platform, id, device, screen and city, drawn from
//! the user's key alone, so a user looks the same in every event without the stream keeping per-user state.

use std::fmt::Write as _;

use serde::ser::SerializeMap;

use super::rng::Draw;
use super::text::{write_uuid, StackStr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Platform {
    Web,
    Ios,
    Android,
}

/// Which platform a user is on, from the user's key alone (the generator needs it before serializing).
pub(crate) fn platform_of(user_key: u64) -> Platform {
    match user_key % 100 {
        0..=44 => Platform::Web,
        45..=74 => Platform::Ios,
        _ => Platform::Android,
    }
}

#[derive(Clone, Copy)]
struct City {
    name: &'static str,
    region: &'static str,
    country: &'static str,
}

const fn city(name: &'static str, region: &'static str, country: &'static str) -> City {
    City { name, region, country }
}

/// Cities with their relative number of users.
const CITIES: [(City, u32); 24] = [
    (city("San Francisco", "California", "US"), 6),
    (city("New York", "New York", "US"), 9),
    (city("London", "England", "GB"), 8),
    (city("Los Angeles", "California", "US"), 6),
    (city("Berlin", "Berlin", "DE"), 5),
    (city("Chicago", "Illinois", "US"), 4),
    (city("Toronto", "Ontario", "CA"), 4),
    (city("Paris", "Île-de-France", "FR"), 5),
    (city("Bengaluru", "Karnataka", "IN"), 5),
    (city("São Paulo", "São Paulo", "BR"), 5),
    (city("Austin", "Texas", "US"), 3),
    (city("Seattle", "Washington", "US"), 3),
    (city("Amsterdam", "North Holland", "NL"), 3),
    (city("Tokyo", "Tokyo", "JP"), 5),
    (city("Sydney", "New South Wales", "AU"), 3),
    (city("Madrid", "Madrid", "ES"), 3),
    (city("Mumbai", "Maharashtra", "IN"), 4),
    (city("Munich", "Bavaria", "DE"), 2),
    (city("Stockholm", "Stockholm", "SE"), 2),
    (city("Mexico City", "Mexico City", "MX"), 4),
    (city("Singapore", "Singapore", "SG"), 3),
    (city("Seoul", "Seoul", "KR"), 3),
    (city("Manchester", "England", "GB"), 2),
    (city("Lagos", "Lagos", "NG"), 2),
];

/// What stays the same for a user across all of their events.
pub(crate) struct UserProfile {
    pub(crate) platform: Platform,
    pub(crate) distinct_id: StackStr<48>,
    os: &'static str,
    os_version: &'static str,
    /// Web: browser and its major version.
    browser: Option<(&'static str, u64)>,
    /// Mobile: model, manufacturer and app version.
    device: Option<(&'static str, &'static str, &'static str)>,
    pub(crate) screen: (u32, u32),
    /// `None` when geolocation failed for this user (Mixpanel then omits `$city`; we write null).
    city: Option<City>,
}

impl UserProfile {
    pub(crate) fn new(user: u32, user_key: u64) -> Self {
        let platform = platform_of(user_key);
        let mut d = Draw::new(user_key ^ 0x005E_ED0F_05E5);
        let mut distinct_id = StackStr::new();
        match d.below(100) {
            // Identified users with an id from the product's own user table.
            0..=59 => {
                let _ = write!(distinct_id, "u_{user:06}");
            }
            // Identified users keyed by a UUID.
            60..=89 => write_uuid(&mut distinct_id, d.next(), d.next()),
            // Anonymous users: Mixpanel's device-id form.
            _ => {
                let _ = distinct_id.write_str("$device:");
                write_uuid(&mut distinct_id, d.next(), d.next());
            }
        }
        let (os, os_version, browser, device, screen) = match platform {
            Platform::Web => {
                let os = d.pick_weighted(&[("Windows", 50), ("Mac OS X", 35), ("Linux", 10), ("Chrome OS", 5)]);
                let browser = if os == "Mac OS X" && d.chance(0.5) {
                    "Safari"
                } else {
                    d.pick_weighted(&[("Chrome", 70), ("Firefox", 12), ("Edge", 15), ("Opera", 3)])
                };
                let version = d.range(118, 131);
                let screen = d.pick(&[(1920, 1080), (1440, 900), (2560, 1440), (1366, 768), (1536, 864)]);
                (os, "", Some((browser, version)), None, screen)
            }
            Platform::Ios => {
                let model = d.pick(&["iPhone14,2", "iPhone14,5", "iPhone15,3", "iPhone16,1", "iPhone16,2", "iPad13,4"]);
                let os_version = d.pick(&["16.7", "17.4", "17.6", "18.0", "18.1"]);
                let app = d.pick(&["5.2.0", "5.3.1", "5.4.0", "5.4.2"]);
                let screen = d.pick(&[(390, 844), (393, 852), (430, 932), (375, 667)]);
                ("iOS", os_version, None, Some((model, "Apple", app)), screen)
            }
            Platform::Android => {
                let (model, maker) = d.pick(&[
                    ("Pixel 8", "Google"),
                    ("Pixel 7a", "Google"),
                    ("SM-S918B", "samsung"),
                    ("SM-A546B", "samsung"),
                    ("2201116SG", "Xiaomi"),
                    ("CPH2451", "OnePlus"),
                ]);
                let os_version = d.pick(&["12", "13", "14", "15"]);
                let app = d.pick(&["5.2.0", "5.3.0", "5.4.0", "5.4.1"]);
                let screen = d.pick(&[(412, 915), (360, 800), (384, 854), (393, 873)]);
                ("Android", os_version, None, Some((model, maker, app)), screen)
            }
        };
        let city = if d.chance(0.03) { None } else { Some(d.pick_weighted(&CITIES)) };
        Self { platform, distinct_id, os, os_version, browser, device, screen, city }
    }

    pub(crate) fn serialize_into<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        map.serialize_entry("$os", self.os)?;
        match self.platform {
            Platform::Web => map.serialize_entry("mp_lib", "web")?,
            Platform::Ios => map.serialize_entry("mp_lib", "iphone")?,
            Platform::Android => map.serialize_entry("mp_lib", "android")?,
        }
        if let Some((browser, version)) = self.browser {
            map.serialize_entry("$browser", browser)?;
            map.serialize_entry("$browser_version", &version)?;
        }
        if let Some((model, manufacturer, app_version)) = self.device {
            map.serialize_entry("$os_version", self.os_version)?;
            map.serialize_entry("$model", model)?;
            map.serialize_entry("$manufacturer", manufacturer)?;
            map.serialize_entry("$app_version_string", app_version)?;
        }
        map.serialize_entry("$screen_width", &self.screen.0)?;
        map.serialize_entry("$screen_height", &self.screen.1)?;
        map.serialize_entry("$city", &self.city.map(|c| c.name))?;
        if let Some(c) = self.city {
            map.serialize_entry("$region", c.region)?;
            map.serialize_entry("mp_country_code", c.country)?;
        }
        Ok(())
    }
}
