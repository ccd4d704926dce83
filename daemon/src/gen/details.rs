//! The properties that depend on the event kind (products, carts, searches, videos, subscriptions, ...), drawn from
//! the event's own detail seed, and the small catalog they pick from.

use std::fmt::Write as _;

use serde::ser::SerializeMap;
use serde::Serialize;

use super::kind::EventKind;
use super::profile::{Platform, UserProfile};
use super::rng::Draw;
use super::text::{hex64, StackStr};

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
pub(crate) fn write_details<M: SerializeMap>(
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
