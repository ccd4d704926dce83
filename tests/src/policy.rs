//! Tiering-policy sections for test configurations. The default policy moves a segment only when the move pays for
//! itself (a cold PUT costs more than a few kilobytes save in a month) and after a day of residency; tests with
//! small data and a test clock say what they want instead.

/// Every columnar segment goes cold at the next migrate, whatever it costs (a forced rule, no residency).
pub const ALL_COLD: &str = "[policy]\nmin_residency_secs = 0\n\
    [[policy.rules]]\nname = \"all-cold\"\nformat = \"columnar\"\nplacement = \"cold\"\nforce = true\n";

/// Every cold segment comes back hot at the next promote, whatever it costs (a forced rule, no residency).
pub const ALL_HOT: &str = "[policy]\nmin_residency_secs = 0\n\
    [[policy.rules]]\nname = \"all-hot\"\ntier = \"cold\"\nplacement = \"hot\"\nforce = true\n";

/// Object-store requests for free and no residency: the default rules then move segments of any size as soon as
/// their age and heat say so (the storage price difference alone pays for a move).
pub const FREE_REQUESTS: &str = "[policy]\nmin_residency_secs = 0\n\
    [cost]\nput_per_1000 = 0.0\nget_per_1000 = 0.0\nlist_per_1000 = 0.0\ndelete_per_1000 = 0.0\n";
