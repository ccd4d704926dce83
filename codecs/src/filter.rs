//! Which stored rows a deletion removes: the one predicate that retention (and, later, user deletions and filtered
//! deletes) hand to the store's filtered rewrite.
//!
//! A [`RowFilter`] is a pure value: it says of one decoded row ([`StoredEvent`]) whether it matches, and of a
//! segment's statistics alone (its time range) whether none, some or all of its rows can match, so that a planner
//! can retire a segment whole or leave it alone without reading it. It is serde-serializable so that a deletion
//! request can be stored durably as it was given. Rows that match are removed; every other row is kept as it is.

use serde::{Deserialize, Serialize};

use crate::condition::Filter;
use crate::event::{StoredEvent, TimeRange};

/// A predicate over stored rows: the rows it matches are the ones a filtered rewrite removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RowFilter {
    /// Rows whose event time is before `before_ms` (retention: everything older than the cutoff).
    TimeBefore { before_ms: i64 },
    /// Rows of these distinct ids ingested at or before sequence `max_seq` (a user deletion removes what existed
    /// when it was requested; events the same user sends later are kept).
    DistinctIds { ids: std::collections::BTreeSet<String>, max_seq: u64 },
    /// Rows ingested at or before sequence `max_seq` whose time is in `[from_ms, to_ms)`, whose event name is
    /// `event` (any name when `None`) and that every one of `conditions` holds for (a filtered delete: the junk
    /// events of a broken client release). Events ingested after the request are kept.
    Events {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<String>,
        from_ms: i64,
        to_ms: i64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        conditions: Vec<Filter>,
        max_seq: u64,
    },
    /// Rows any of `filters` matches (several requests applied in one rewrite). Empty: matches nothing.
    AnyOf { filters: Vec<RowFilter> },
}

/// What a segment's statistics say about the rows a filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coverage {
    /// No row can match: the segment is left alone.
    None,
    /// Some rows may match: the rows must be read.
    Some,
    /// Every row matches: the segment can be retired whole, without reading it.
    All,
}

impl RowFilter {
    /// Whether `row` is removed.
    pub fn matches(&self, row: &StoredEvent) -> bool {
        match self {
            RowFilter::TimeBefore { before_ms } => row.event.time_ms < *before_ms,
            RowFilter::DistinctIds { ids, max_seq } => row.seq <= *max_seq && ids.contains(&row.event.distinct_id),
            RowFilter::Events { event, from_ms, to_ms, conditions, max_seq } => {
                let e = &row.event;
                row.seq <= *max_seq
                    && (*from_ms..*to_ms).contains(&e.time_ms)
                    && event.as_ref().is_none_or(|name| *name == e.event)
                    && conditions.iter().all(|c| c.matches(e))
            }
            RowFilter::AnyOf { filters } => filters.iter().any(|f| f.matches(row)),
        }
    }

    /// What the time range of a segment's rows (`None`: it has none) alone says about them. Conservative: `All`
    /// and `None` are certain, `Some` means "read to know".
    pub fn coverage(&self, times: Option<TimeRange>) -> Coverage {
        let Some(t) = times else { return Coverage::None };
        match self {
            RowFilter::TimeBefore { before_ms } if t.max_ms < *before_ms => Coverage::All,
            RowFilter::TimeBefore { before_ms } if t.min_ms >= *before_ms => Coverage::None,
            RowFilter::TimeBefore { .. } => Coverage::Some,
            RowFilter::DistinctIds { ids, .. } if ids.is_empty() => Coverage::None,
            RowFilter::DistinctIds { .. } => Coverage::Some,
            // Disjoint windows hold no match; anything else depends on names, properties and sequences.
            RowFilter::Events { from_ms, to_ms, .. }
                if t.max_ms < *from_ms || t.min_ms >= *to_ms || from_ms >= to_ms =>
            {
                Coverage::None
            }
            RowFilter::Events { .. } => Coverage::Some,
            RowFilter::AnyOf { filters } => {
                let each: Vec<Coverage> = filters.iter().map(|f| f.coverage(Some(t))).collect();
                if each.contains(&Coverage::All) {
                    Coverage::All
                } else if each.iter().all(|c| *c == Coverage::None) {
                    Coverage::None
                } else {
                    Coverage::Some
                }
            }
        }
    }

    /// The event properties `matches` reads beyond the lifted fields, so that a reader that decodes only some
    /// properties decodes these too (sorted, without repeats).
    pub fn properties(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_properties(&mut out);
        out.sort();
        out.dedup();
        out
    }

    fn collect_properties(&self, out: &mut Vec<String>) {
        match self {
            RowFilter::TimeBefore { .. } | RowFilter::DistinctIds { .. } => {}
            RowFilter::Events { conditions, .. } => out.extend(conditions.iter().map(|c| c.property.clone())),
            RowFilter::AnyOf { filters } => filters.iter().for_each(|f| f.collect_properties(out)),
        }
    }

    /// Splits `rows` into (kept, removed), each in input order.
    pub fn split(&self, rows: Vec<StoredEvent>) -> (Vec<StoredEvent>, Vec<StoredEvent>) {
        rows.into_iter().partition(|r| !self.matches(r))
    }
}

impl std::fmt::Display for RowFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowFilter::TimeBefore { before_ms } => write!(f, "time < {before_ms}"),
            RowFilter::DistinctIds { ids, max_seq } => write!(f, "{} distinct id(s) up to seq {max_seq}", ids.len()),
            RowFilter::Events { event, from_ms, to_ms, conditions, max_seq } => {
                write!(f, "events {} in [{from_ms}, {to_ms})", event.as_deref().unwrap_or("(any name)"))?;
                if !conditions.is_empty() {
                    write!(f, " where {} condition(s)", conditions.len())?;
                }
                write!(f, " up to seq {max_seq}")
            }
            RowFilter::AnyOf { filters } => {
                f.write_str("any of [")?;
                for (i, x) in filters.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::Event;

    fn row(seq: u64, time_ms: i64, distinct_id: &str) -> StoredEvent {
        StoredEvent {
            seq,
            event: Event {
                event: "E".into(),
                time_ms,
                distinct_id: distinct_id.into(),
                insert_id: seq.to_string(),
                properties: Default::default(),
            },
        }
    }

    fn range(min_ms: i64, max_ms: i64) -> Option<TimeRange> {
        Some(TimeRange { min_ms, max_ms })
    }

    #[test]
    fn time_before_matches_rows_strictly_older_than_the_cutoff() {
        let f = RowFilter::TimeBefore { before_ms: 100 };
        assert!(f.matches(&row(1, 99, "a")));
        assert!(!f.matches(&row(1, 100, "a")), "the cutoff itself is kept");
        assert_eq!(f.coverage(range(0, 99)), Coverage::All);
        assert_eq!(f.coverage(range(100, 200)), Coverage::None);
        assert_eq!(f.coverage(range(99, 100)), Coverage::Some);
        assert_eq!(f.coverage(None), Coverage::None);
        let (kept, removed) = f.split(vec![row(1, 50, "a"), row(2, 150, "b"), row(3, 99, "c")]);
        assert_eq!(kept.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2]);
        assert_eq!(removed.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn distinct_ids_match_only_up_to_the_request_sequence() {
        let f = RowFilter::DistinctIds { ids: ["u1".to_string()].into(), max_seq: 10 };
        assert!(f.matches(&row(10, 0, "u1")));
        assert!(!f.matches(&row(11, 0, "u1")), "sent after the request: kept");
        assert!(!f.matches(&row(1, 0, "u2")));
        assert_eq!(f.coverage(range(0, 1)), Coverage::Some);
        let none = RowFilter::DistinctIds { ids: Default::default(), max_seq: 10 };
        assert_eq!(none.coverage(range(0, 1)), Coverage::None);
    }

    #[test]
    fn any_of_combines_and_round_trips_through_json() {
        let f = RowFilter::AnyOf {
            filters: vec![
                RowFilter::TimeBefore { before_ms: 100 },
                RowFilter::DistinctIds { ids: ["u1".to_string()].into(), max_seq: 5 },
            ],
        };
        assert!(f.matches(&row(9, 50, "x")) && f.matches(&row(5, 500, "u1")) && !f.matches(&row(6, 500, "u1")));
        assert_eq!(f.coverage(range(0, 50)), Coverage::All);
        assert_eq!(f.coverage(range(200, 300)), Coverage::Some);
        assert_eq!(RowFilter::AnyOf { filters: vec![] }.coverage(range(0, 1)), Coverage::None);
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<RowFilter>(&json).unwrap(), f);
        assert!(json.contains("\"kind\":\"time_before\""), "{json}");
        assert_eq!(f.to_string(), "any of [time < 100, 1 distinct id(s) up to seq 5]");
    }

    fn named(seq: u64, time_ms: i64, name: &str, os: Option<&str>) -> StoredEvent {
        let mut r = row(seq, time_ms, "u");
        r.event.event = name.into();
        if let Some(os) = os {
            r.event.properties.insert("os".into(), serde_json::json!(os));
        }
        r
    }

    #[test]
    fn events_match_by_name_window_conditions_and_sequence() {
        use crate::condition::{Filter, Op};
        let f = RowFilter::Events {
            event: Some("Junk".into()),
            from_ms: 100,
            to_ms: 200,
            conditions: vec![Filter { property: "os".into(), op: Op::Eq, value: serde_json::json!("ios") }],
            max_seq: 10,
        };
        assert!(f.matches(&named(1, 100, "Junk", Some("ios"))), "the window's start is in it");
        assert!(!f.matches(&named(1, 200, "Junk", Some("ios"))), "its end is not");
        assert!(!f.matches(&named(1, 99, "Junk", Some("ios"))));
        assert!(!f.matches(&named(1, 150, "Good", Some("ios"))), "another name");
        assert!(!f.matches(&named(1, 150, "Junk", Some("web"))), "a condition fails");
        assert!(!f.matches(&named(1, 150, "Junk", None)), "a condition's property is missing");
        assert!(!f.matches(&named(11, 150, "Junk", Some("ios"))), "ingested after the request: kept");
        assert_eq!(f.properties(), ["os"]);
        assert_eq!(f.coverage(range(0, 99)), Coverage::None);
        assert_eq!(f.coverage(range(200, 300)), Coverage::None);
        assert_eq!(f.coverage(range(150, 300)), Coverage::Some);
        let any_name = RowFilter::Events { event: None, from_ms: 0, to_ms: 10, conditions: vec![], max_seq: 5 };
        assert!(any_name.matches(&named(5, 3, "Whatever", None)));
        for f in [f, any_name] {
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(serde_json::from_str::<RowFilter>(&json).unwrap(), f, "{json}");
        }
    }

    proptest! {
        /// What the statistics say is never contradicted by the rows: `All` => every row matches, `None` => none.
        #[test]
        fn coverage_agrees_with_the_rows(
            before in -50i64..50,
            times in proptest::collection::vec(-60i64..60, 1..20),
        ) {
            let f = RowFilter::TimeBefore { before_ms: before };
            let rows: Vec<StoredEvent> = times.iter().enumerate().map(|(i, t)| row(i as u64, *t, "u")).collect();
            let t = range(*times.iter().min().unwrap(), *times.iter().max().unwrap());
            let matched = rows.iter().filter(|r| f.matches(r)).count();
            match f.coverage(t) {
                Coverage::All => prop_assert_eq!(matched, rows.len()),
                Coverage::None => prop_assert_eq!(matched, 0),
                Coverage::Some => prop_assert!(matched > 0 && matched < rows.len()),
            }
            let (kept, removed) = f.split(rows.clone());
            prop_assert_eq!(kept.len() + removed.len(), rows.len());
            prop_assert!(kept.iter().all(|r| !f.matches(r)) && removed.iter().all(|r| f.matches(r)));
        }

        /// A filtered delete's statistics never hide a match: `None` => no row matches, whatever the names,
        /// properties and sequences.
        #[test]
        fn events_coverage_never_hides_a_match(
            from in -50i64..50,
            len in 0i64..40,
            name in proptest::option::of(0u8..3),
            max_seq in 0u64..20,
            rows in proptest::collection::vec((-60i64..60, 0u8..3, 0u64..20), 1..20),
        ) {
            let f = RowFilter::Events {
                event: name.map(|n| format!("e{n}")),
                from_ms: from,
                to_ms: from + len,
                conditions: vec![],
                max_seq,
            };
            let rows: Vec<StoredEvent> =
                rows.iter().map(|(t, n, seq)| named(*seq, *t, &format!("e{n}"), None)).collect();
            let times = rows.iter().map(|r| r.event.time_ms);
            let t = range(times.clone().min().unwrap(), times.max().unwrap());
            if f.coverage(t) == Coverage::None {
                prop_assert!(rows.iter().all(|r| !f.matches(r)));
            }
            let expected = rows
                .iter()
                .filter(|r| {
                    r.seq <= max_seq && r.event.time_ms >= from && r.event.time_ms < from + len
                        && name.is_none_or(|n| r.event.event == format!("e{n}"))
                })
                .count();
            prop_assert_eq!(rows.iter().filter(|r| f.matches(r)).count(), expected);
        }
    }
}
