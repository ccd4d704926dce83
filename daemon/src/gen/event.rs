//! One generated event and how it becomes Mixpanel-shaped JSON.
//!
//! An [`Event`] holds only identities and seeds (a few machine words); its properties are drawn while it is
//! serialized, from the user's key (stable per user: platform, `$os`, `$city`, ...) and the event's own detail seed.
//! So serializing is a pure function of the value: an at-least-once duplicate is a copy of the `Event` and comes out
//! byte-identical to its original, and the stream keeps no per-user state however many users it has.

use std::fmt::{self, Write as _};

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::rng::Draw;

/// The event vocabulary, most frequent first (the generator draws ranks from a Zipf-like table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    PageView,
    ScreenView,
    ButtonClick,
    Search,
    ViewItem,
    AppOpen,
    AddToCart,
    Login,
    VideoPlay,
    NotificationReceived,
    Like,
    Share,
    VideoPause,
    RemoveFromCart,
    BeginCheckout,
    Comment,
    NotificationOpened,
    Purchase,
    VideoComplete,
    AppClose,
    Follow,
    Logout,
    SettingsChanged,
    SignUp,
    Error,
    InviteSent,
    FeedbackSubmitted,
    SubscriptionStarted,
    SubscriptionCancelled,
    Refund,
}

impl EventKind {
    /// Every kind, in popularity order.
    pub const ALL: [EventKind; 30] = [
        Self::PageView,
        Self::ScreenView,
        Self::ButtonClick,
        Self::Search,
        Self::ViewItem,
        Self::AppOpen,
        Self::AddToCart,
        Self::Login,
        Self::VideoPlay,
        Self::NotificationReceived,
        Self::Like,
        Self::Share,
        Self::VideoPause,
        Self::RemoveFromCart,
        Self::BeginCheckout,
        Self::Comment,
        Self::NotificationOpened,
        Self::Purchase,
        Self::VideoComplete,
        Self::AppClose,
        Self::Follow,
        Self::Logout,
        Self::SettingsChanged,
        Self::SignUp,
        Self::Error,
        Self::InviteSent,
        Self::FeedbackSubmitted,
        Self::SubscriptionStarted,
        Self::SubscriptionCancelled,
        Self::Refund,
    ];

    /// The `event` field as Mixpanel users write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::PageView => "Page View",
            Self::ScreenView => "Screen View",
            Self::ButtonClick => "Button Click",
            Self::Search => "Search",
            Self::ViewItem => "View Item",
            Self::AppOpen => "App Open",
            Self::AddToCart => "Add To Cart",
            Self::Login => "Login",
            Self::VideoPlay => "Video Play",
            Self::NotificationReceived => "Notification Received",
            Self::Like => "Like",
            Self::Share => "Share",
            Self::VideoPause => "Video Pause",
            Self::RemoveFromCart => "Remove From Cart",
            Self::BeginCheckout => "Begin Checkout",
            Self::Comment => "Comment",
            Self::NotificationOpened => "Notification Opened",
            Self::Purchase => "Purchase",
            Self::VideoComplete => "Video Complete",
            Self::AppClose => "App Close",
            Self::Follow => "Follow",
            Self::Logout => "Logout",
            Self::SettingsChanged => "Settings Changed",
            Self::SignUp => "Sign Up",
            Self::Error => "Error",
            Self::InviteSent => "Invite Sent",
            Self::FeedbackSubmitted => "Feedback Submitted",
            Self::SubscriptionStarted => "Subscription Started",
            Self::SubscriptionCancelled => "Subscription Cancelled",
            Self::Refund => "Refund",
        }
    }

    /// Kinds only a mobile app sends; a web user's draw of one of these becomes a page view.
    pub(crate) fn mobile_only(self) -> bool {
        matches!(
            self,
            Self::ScreenView | Self::AppOpen | Self::AppClose | Self::NotificationReceived | Self::NotificationOpened
        )
    }
}

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
struct UserProfile {
    platform: Platform,
    distinct_id: StackStr<48>,
    os: &'static str,
    os_version: &'static str,
    /// Web: browser and its major version.
    browser: Option<(&'static str, u64)>,
    /// Mobile: model, manufacturer and app version.
    device: Option<(&'static str, &'static str, &'static str)>,
    screen: (u32, u32),
    /// `None` when geolocation failed for this user (Mixpanel then omits `$city`; we write null).
    city: Option<City>,
}

impl UserProfile {
    fn new(user: u32, user_key: u64) -> Self {
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

    fn serialize_into<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
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

const PRODUCT_COUNT: u64 = 480;
const ADJECTIVES: [&str; 12] =
    ["Classic", "Ultra", "Eco", "Pro", "Mini", "Vintage", "Smart", "Everyday", "Premium", "Travel", "Urban", "Cozy"];
const NOUNS: [&str; 20] = [
    "Backpack",
    "Sneakers",
    "Headphones",
    "Water Bottle",
    "Desk Lamp",
    "Yoga Mat",
    "Notebook",
    "Phone Case",
    "Jacket",
    "Coffee Beans",
    "Sunglasses",
    "Watch",
    "Blender",
    "Board Game",
    "Keyboard",
    "Candle",
    "Scarf",
    "Tent",
    "Speaker",
    "Mug",
];
const CATEGORIES: [&str; 8] = ["Apparel", "Electronics", "Home", "Outdoors", "Books", "Beauty", "Toys", "Grocery"];

/// One catalog item; the same index always names the same product at the same price.
#[derive(Clone, Copy)]
struct Product {
    index: u64,
    adjective: &'static str,
    noun: &'static str,
    category: &'static str,
    price: f64,
}

impl Product {
    fn popular(d: &mut Draw) -> Self {
        Self::new(d.skewed(PRODUCT_COUNT))
    }

    fn new(index: u64) -> Self {
        let mut d = Draw::new(index ^ 0x0070_0D0C_7000);
        let adjective = d.pick(&ADJECTIVES);
        let noun = d.pick(&NOUNS);
        let category = d.pick(&CATEGORIES);
        // Prices end in .99 or .49 and spread from a few dollars to a few hundred.
        let dollars = (4.0 * (d.unit() * 4.3).exp()) as u64;
        let cents = if d.chance(0.7) { 0.99 } else { 0.49 };
        Self { index, adjective, noun, category, price: dollars as f64 + cents }
    }

    fn id(&self) -> StackStr<16> {
        let mut s = StackStr::new();
        let _ = write!(s, "sku_{:05}", self.index);
        s
    }

    fn name(&self) -> StackStr<40> {
        let mut s = StackStr::new();
        let _ = write!(s, "{} {}", self.adjective, self.noun);
        s
    }
}

#[derive(Serialize)]
struct CartItem {
    product_id: StackStr<16>,
    price: f64,
    quantity: u64,
}

#[derive(Serialize)]
struct Cart {
    items: Vec<CartItem>,
    item_count: u64,
    total: f64,
}

impl Cart {
    /// A cart holding `first` and up to three other items.
    fn draw(d: &mut Draw, first: Product, first_quantity: u64) -> Self {
        let mut items = vec![CartItem { product_id: first.id(), price: first.price, quantity: first_quantity }];
        for _ in 0..d.skewed(4) {
            let p = Product::popular(d);
            items.push(CartItem { product_id: p.id(), price: p.price, quantity: d.range(1, 2) });
        }
        let total = cents(items.iter().map(|i| i.price * i.quantity as f64).sum());
        let item_count = items.iter().map(|i| i.quantity).sum();
        Self { items, item_count, total }
    }
}

/// Rounds to cents so prices print as `19.99`, not `19.990000000000002`.
fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

const PAGES: [&str; 10] = [
    "/",
    "/pricing",
    "/blog",
    "/docs/getting-started",
    "/search",
    "/cart",
    "/checkout",
    "/account",
    "/signup",
    "/about",
];
const SEARCHES: [&str; 16] = [
    "running shoes",
    "wireless headphones",
    "backpack",
    "gift card",
    "yoga mat",
    "coffee",
    "winter jacket",
    "usb-c cable",
    "desk lamp",
    "board games",
    "sunglasses",
    "water bottle",
    "phone case",
    "keyboard",
    "tent",
    "mug",
];
const PLANS: [(&str, f64); 4] = [("starter", 9.0), ("growth", 29.0), ("business", 99.0), ("enterprise", 499.0)];

/// Writes the properties that depend on the event kind; returns the page path the event happened on (for
/// `$current_url` on the web).
fn write_details<M: SerializeMap>(
    map: &mut M,
    kind: EventKind,
    d: &mut Draw,
    user: &UserProfile,
) -> Result<&'static str, M::Error> {
    let mut page = d.pick(&PAGES);
    match kind {
        EventKind::PageView | EventKind::ScreenView => {
            if kind == EventKind::ScreenView {
                let screen = d.pick(&["Home", "Feed", "Product", "Cart", "Profile", "Settings", "Search"]);
                map.serialize_entry("screen_name", screen)?;
            } else {
                map.serialize_entry("page_title", page_title(page))?;
            }
            map.serialize_entry("load_time_ms", &(40 + d.skewed(3000)))?;
        }
        EventKind::ButtonClick => {
            let button = d.pick(&["cta_primary", "nav_menu", "add_to_wishlist", "filter_toggle", "dismiss_banner"]);
            map.serialize_entry("button_id", button)?;
            map.serialize_entry("position", &d.range(1, 12))?;
        }
        EventKind::Search => {
            page = "/search";
            map.serialize_entry("query", d.pick(&SEARCHES))?;
            map.serialize_entry("results_count", &d.skewed(250))?;
            let filters = ["in_stock", "free_shipping", "price_under_50", "rating_4_plus", "new_arrivals"];
            let n = d.skewed(4) as usize;
            let start = d.below(filters.len() as u64) as usize;
            let chosen: Vec<&str> = (0..n).map(|i| filters[(start + i) % filters.len()]).collect();
            map.serialize_entry("filters", &chosen)?;
        }
        EventKind::ViewItem | EventKind::RemoveFromCart => {
            let p = Product::popular(d);
            map.serialize_entry("product_id", &p.id())?;
            map.serialize_entry("product_name", &p.name())?;
            map.serialize_entry("category", p.category)?;
            map.serialize_entry("price", &p.price)?;
            if kind == EventKind::RemoveFromCart {
                page = "/cart";
                map.serialize_entry("quantity", &d.range(1, 3))?;
            } else {
                map.serialize_entry("in_stock", &d.chance(0.9))?;
            }
        }
        EventKind::AddToCart => {
            let p = Product::popular(d);
            let quantity = 1 + d.skewed(4);
            map.serialize_entry("product_id", &p.id())?;
            map.serialize_entry("product_name", &p.name())?;
            map.serialize_entry("category", p.category)?;
            map.serialize_entry("price", &p.price)?;
            map.serialize_entry("quantity", &quantity)?;
            map.serialize_entry("cart", &Cart::draw(d, p, quantity))?;
        }
        EventKind::BeginCheckout | EventKind::Purchase => {
            page = "/checkout";
            let p = Product::popular(d);
            let quantity = d.range(1, 2);
            let cart = Cart::draw(d, p, quantity);
            let coupon = if d.chance(0.15) { Some(d.pick(&["WELCOME10", "SPRING25", "FREESHIP"])) } else { None };
            map.serialize_entry("coupon", &coupon)?;
            if kind == EventKind::Purchase {
                let mut order = StackStr::<24>::new();
                let _ = write!(order, "ord_{:010}", d.below(10_000_000_000));
                map.serialize_entry("order_id", &order)?;
                map.serialize_entry("revenue", &cart.total)?;
                map.serialize_entry("currency", d.pick_weighted(&[("USD", 70), ("EUR", 20), ("GBP", 10)]))?;
                map.serialize_entry("payment_method", d.pick(&["card", "paypal", "apple_pay", "google_pay"]))?;
                map.serialize_entry("is_first_purchase", &d.chance(0.2))?;
            }
            map.serialize_entry("cart", &cart)?;
        }
        EventKind::Refund => {
            let mut order = StackStr::<24>::new();
            let _ = write!(order, "ord_{:010}", d.below(10_000_000_000));
            map.serialize_entry("order_id", &order)?;
            map.serialize_entry("amount", &Product::popular(d).price)?;
            map.serialize_entry("reason", d.pick(&["damaged", "wrong_size", "not_as_described", "changed_mind"]))?;
        }
        EventKind::Login | EventKind::SignUp | EventKind::Logout => {
            let method = d.pick_weighted(&[("email", 55), ("google", 30), ("apple", 10), ("sso", 5)]);
            match kind {
                EventKind::Login => {
                    map.serialize_entry("method", method)?;
                    map.serialize_entry("success", &d.chance(0.93))?;
                    map.serialize_entry("attempt", &(1 + d.skewed(3)))?;
                }
                EventKind::SignUp => {
                    page = "/signup";
                    map.serialize_entry("signup_method", method)?;
                    let referral = if d.chance(0.3) { Some(hex64(d.next())) } else { None };
                    map.serialize_entry("referral_code", &referral)?;
                    map.serialize_entry("plan", "free")?;
                    map.serialize_entry("marketing_opt_in", &d.chance(0.4))?;
                }
                _ => map.serialize_entry("session_length_s", &(30 + d.skewed(3600)))?,
            }
        }
        EventKind::VideoPlay | EventKind::VideoPause | EventKind::VideoComplete => {
            let video = d.skewed(900);
            let mut video_id = StackStr::<16>::new();
            let _ = write!(video_id, "vid_{video:04}");
            let duration = 30 + Draw::new(video).below(1800);
            map.serialize_entry("video_id", &video_id)?;
            map.serialize_entry("duration_s", &duration)?;
            let position = if kind == EventKind::VideoComplete { duration } else { d.below(duration) };
            map.serialize_entry("position_s", &position)?;
            map.serialize_entry("autoplay", &d.chance(0.25))?;
            map.serialize_entry("quality", d.pick(&["480p", "720p", "1080p", "4k"]))?;
        }
        EventKind::Share | EventKind::Like | EventKind::Comment | EventKind::Follow => {
            let mut content = StackStr::<24>::new();
            let _ = write!(content, "post_{:07}", d.skewed(2_000_000));
            map.serialize_entry("content_id", &content)?;
            map.serialize_entry("content_type", d.pick(&["post", "video", "product", "review"]))?;
            match kind {
                EventKind::Share => {
                    map.serialize_entry("channel", d.pick(&["link", "twitter", "facebook", "email", "whatsapp"]))?;
                    let tags = ["sale", "new", "trending", "gift", "summer", "tech"];
                    let start = d.below(tags.len() as u64) as usize;
                    let chosen: Vec<&str> =
                        (0..d.range(1, 3) as usize).map(|i| tags[(start + i) % tags.len()]).collect();
                    map.serialize_entry("tags", &chosen)?;
                }
                EventKind::Comment => map.serialize_entry("comment_length", &(1 + d.skewed(500)))?,
                EventKind::Follow => {
                    let target = if d.chance(0.1) { None } else { Some(d.below(1_000_000)) };
                    map.serialize_entry("target_user", &target)?;
                }
                _ => {}
            }
        }
        EventKind::NotificationReceived | EventKind::NotificationOpened => {
            let mut campaign = StackStr::<16>::new();
            let _ = write!(campaign, "cmp_{:03}", d.skewed(120));
            map.serialize_entry("campaign_id", &campaign)?;
            map.serialize_entry("notification_type", d.pick(&["promo", "reminder", "social", "transactional"]))?;
            map.serialize_entry("push_enabled", &true)?;
        }
        EventKind::AppOpen | EventKind::AppClose => {
            map.serialize_entry("from_background", &d.chance(0.6))?;
            map.serialize_entry("launch_time_ms", &(150 + d.skewed(4000)))?;
        }
        EventKind::SettingsChanged => {
            let setting = d.pick(&["dark_mode", "notifications", "language", "autoplay"]);
            map.serialize_entry("setting", setting)?;
            if setting == "language" {
                map.serialize_entry("old_value", "en")?;
                map.serialize_entry("new_value", d.pick(&["de", "fr", "es", "pt", "ja"]))?;
            } else {
                let new = d.chance(0.5);
                map.serialize_entry("old_value", &!new)?;
                map.serialize_entry("new_value", &new)?;
            }
        }
        EventKind::Error => {
            let (code, message) = d.pick(&[
                (500, "Internal Server Error"),
                (404, "Not Found"),
                (408, "Request Timeout"),
                (0, "Network Error"),
            ]);
            map.serialize_entry("error_code", &code)?;
            map.serialize_entry("error_message", message)?;
            map.serialize_entry("fatal", &d.chance(0.05))?;
            map.serialize_entry("stack", &Option::<&str>::None)?;
        }
        EventKind::InviteSent => {
            map.serialize_entry("invitees", &(1 + d.skewed(10)))?;
            map.serialize_entry("channel", d.pick(&["email", "sms", "link"]))?;
        }
        EventKind::FeedbackSubmitted => {
            map.serialize_entry("rating", &d.range(1, 5))?;
            map.serialize_entry("nps", &d.range(0, 10))?;
            let comment = if d.chance(0.35) {
                Some(d.pick(&["love it", "too slow", "great prices", "confusing checkout"]))
            } else {
                None
            };
            map.serialize_entry("comment", &comment)?;
        }
        EventKind::SubscriptionStarted | EventKind::SubscriptionCancelled => {
            let (plan, price) = d.pick(&PLANS);
            map.serialize_entry("plan", plan)?;
            let annual = d.chance(0.3);
            map.serialize_entry("billing_period", if annual { "annual" } else { "monthly" })?;
            map.serialize_entry("price", &if annual { cents(price * 10.0) } else { price })?;
            if kind == EventKind::SubscriptionStarted {
                map.serialize_entry("trial", &d.chance(0.45))?;
            } else {
                map.serialize_entry("reason", d.pick(&["too_expensive", "missing_feature", "switched", "not_using"]))?;
                map.serialize_entry("months_active", &(1 + d.skewed(36)))?;
            }
        }
    }
    if user.platform == Platform::Web && kind == EventKind::PageView {
        map.serialize_entry("$screen_dpr", &if user.screen.0 >= 1920 { 1 } else { 2 })?;
    }
    Ok(page)
}

fn page_title(page: &str) -> &'static str {
    match page {
        "/" => "Home",
        "/pricing" => "Pricing",
        "/blog" => "Blog",
        "/docs/getting-started" => "Getting Started",
        "/search" => "Search",
        "/cart" => "Your Cart",
        "/checkout" => "Checkout",
        "/account" => "Account",
        "/signup" => "Sign Up",
        _ => "About Us",
    }
}

/// A short string built on the stack (ids, URLs): avoids an allocation per property on the hot path.
#[derive(Clone, Copy)]
pub(crate) struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    pub(crate) fn new() -> Self {
        Self { buf: [0; N], len: 0 }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended (see `write_str`), so the bytes are UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).expect("StackStr holds whole UTF-8 strings")
    }
}

impl<const N: usize> fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > N {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl<const N: usize> Serialize for StackStr<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for StackStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

fn hex64(v: u64) -> StackStr<16> {
    let mut s = StackStr::new();
    let _ = write!(s, "{v:016x}");
    s
}

fn hex128(v: u128) -> StackStr<32> {
    let mut s = StackStr::new();
    let _ = write!(s, "{v:032x}");
    s
}

/// Writes a version-4-shaped UUID made from two random words.
fn write_uuid<const N: usize>(out: &mut StackStr<N>, hi: u64, lo: u64) {
    let _ = write!(
        out,
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFF,
        0x8000 | ((lo >> 48) & 0x3FFF),
        lo & 0xFFFF_FFFF_FFFF
    );
}
