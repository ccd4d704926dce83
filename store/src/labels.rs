//! Labelled enums: enums that travel as fixed lowercase labels (in the catalog's JSON, the HTTP API, metric labels,
//! log fields and the command line). [`labelled_enum!`](crate::labelled_enum) writes each such enum once, as a list
//! of variants and their labels, and derives from that one list its serde form, `label()`, `Display`, `ALL` and
//! `from_label`, so the label of a variant is written in exactly one place and the serde name and the label cannot
//! drift apart.
//!
//! The store declares its own enums with it (tiers, placements, states, move targets, ...), and the daemon its API
//! enums, so that both crates spell a label the same way. The calling crate needs `serde` as a dependency (the
//! derives name it).

/// `labelled_enum! { /// docs  #[derive(Hash)]  pub enum Name { /// docs  Variant = "label", ... } }`.
///
/// The enum derives `Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize`; attributes written before `pub enum`
/// (docs, more derives) are kept. Each variant serializes as its label.
#[macro_export]
macro_rules! labelled_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $label:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $label)] $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The variant's label: its serde form.
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// The variant whose label is `label`.
            pub fn from_label(label: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.label() == label)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.label())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::labelled_enum! {
        /// A test enum.
        #[derive(Hash, PartialOrd, Ord)]
        pub enum Color {
            /// Red.
            Red = "red",
            DarkBlue = "dark_blue",
        }
    }

    #[test]
    fn labels_are_the_serde_form() {
        for c in Color::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.label());
            assert_eq!(serde_json::from_value::<Color>(c.label().into()).unwrap(), *c);
            assert_eq!(Color::from_label(c.label()), Some(*c));
        }
        assert_eq!(Color::from_label("Red"), None);
        assert_eq!(format!("[{:<10}]", Color::DarkBlue), "[dark_blue ]");
        assert!(Color::Red < Color::DarkBlue);
    }
}
