//! The event vocabulary: the 30 event names the generator draws from, by popularity rank, and which of them only a
//! mobile app sends.

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
