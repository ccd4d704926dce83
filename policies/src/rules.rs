//! Declarative tiering rules: which segments should live where, in which codec, compacted to which size.
//!
//! Operators describe intent as an ordered list of rules (`[[policy.rules]]` in the daemon's config) instead of
//! code: "data read more than 10 times a day comes back hot", "idle columnar data older than a day goes cold",
//! "when the hot disk is 90 % full, evict". A rule has conditions (all must hold; an absent condition always holds)
//! and prescriptions on three independent *aspects*: placement, codec and compaction target. For each segment and
//! each aspect, the **first** rule in list order that matches and prescribes that aspect wins; later rules are not
//! consulted for it. A rule therefore never needs to know about the rules after it, and an operator reads the list
//! top to bottom like a firewall.
//!
//! Rules only say what *should* be. Whether a prescribed move is worth its cost, and whether it respects residency,
//! hysteresis, capacity and per-pass limits, is the tiering planner's job ([`crate::tiering`]).
//!
//! Bounds are inclusive on both sides (`min_age_secs <= age <= max_age_secs`), so `max_heat = 0.0` means "never
//! read". The age is the age of the segment's newest event (`now - max_time_ms`), like the rewrite planners'.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::planner::age_ms;
use crate::segment::{Placement, SegmentFormat, SegmentStats};

const POLICY: &str = "policy";
const DAY_SECS: u64 = 86_400;

/// One rule; see the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique, non-empty: actions, logs and metrics name the rule that fired.
    pub name: String,

    // ---- conditions (all must hold; absent = any) ----
    /// Glob over the project name: `*` any run of characters, `?` one character (`web-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Age of the newest event, in seconds, at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_age_secs: Option<u64>,
    /// Age of the newest event, in seconds, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
    /// Read heat (decayed reads per day), at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_heat: Option<f64>,
    /// Read heat (decayed reads per day), at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_heat: Option<f64>,
    /// Segment size in bytes, at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_bytes: Option<u64>,
    /// Segment size in bytes, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Physical format (`rows`, `columnar`). The planner acts on columnar segments only: row segments never go cold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SegmentFormat>,
    /// Current placement (`hot`, `cold`, `both`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Placement>,
    /// Holds when the hot disk is fuller than this fraction (0 to 1) of its capacity: a free-space watermark like
    /// ClickHouse's `move_factor`. Never holds when the capacity is unknown. A placement chosen by such a rule moves
    /// only as many segments (coldest first) as it takes to bring the fill back to the watermark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_fill_above: Option<f64>,

    // ---- prescriptions (at least one) ----
    /// Where matching segments should live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// The codec matching columnar segments should have (`zstd-19`): a recompression when theirs differs (only of
    /// segments with a hot copy). For the segments it matches it replaces the recompress ladder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// Compact matching small columnar segments of one (project, day) towards segments of this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact_target_bytes: Option<u64>,
    /// The placement is carried out even when the move does not pay for itself over the horizon and regardless of
    /// the heat hysteresis (for example a promotion wanted for read latency, or eviction from a full disk).
    /// Residency, capacity and the per-pass byte limit still hold.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// What a rule is evaluated against besides the segment: the time and the hot disk's fill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleContext {
    pub now_ms: i64,
    /// Hot bytes used / capacity; `None` when the capacity is unknown.
    pub hot_fill: Option<f64>,
}

impl Rule {
    /// Whether every condition of the rule holds for `s`.
    pub fn matches(&self, s: &SegmentStats, cx: RuleContext) -> bool {
        let age = age_ms(cx.now_ms, s.max_time_ms);
        let secs_ms = |secs: u64| i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000);
        self.project.as_deref().is_none_or(|g| glob(g, &s.project))
            && self.min_age_secs.is_none_or(|m| age >= secs_ms(m))
            && self.max_age_secs.is_none_or(|m| age <= secs_ms(m))
            && self.min_heat.is_none_or(|m| s.heat >= m)
            && self.max_heat.is_none_or(|m| s.heat <= m)
            && self.min_bytes.is_none_or(|m| s.bytes >= m)
            && self.max_bytes.is_none_or(|m| s.bytes <= m)
            && self.format.is_none_or(|f| s.format == f)
            && self.tier.is_none_or(|t| s.placement == t)
            && self.hot_fill_above.is_none_or(|w| cx.hot_fill.is_some_and(|fill| fill > w))
    }

    fn field(&self, i: usize, field: &str) -> String {
        format!("rules[{i}] ({:?}).{field}", self.name)
    }

    fn validate(&self, i: usize) -> Result<(), PolicyError> {
        let f = |field: &str| self.field(i, field);
        PolicyError::require(!self.name.trim().is_empty(), POLICY, &format!("rules[{i}].name"), || {
            "is empty: give every rule a name".into()
        })?;
        PolicyError::require(self.project.as_deref().is_none_or(|p| !p.is_empty()), POLICY, &f("project"), || {
            "is empty: give a glob such as \"web-*\" or leave the key out".into()
        })?;
        for (field, value) in [("min_heat", self.min_heat), ("max_heat", self.max_heat)] {
            PolicyError::require(value.is_none_or(|v| v.is_finite() && v >= 0.0), POLICY, &f(field), || {
                format!("is {value:?}: give reads per day, zero or more")
            })?;
        }
        let ordered = [
            ("min_age_secs", self.min_age_secs.map(|v| v as f64), self.max_age_secs.map(|v| v as f64)),
            ("min_heat", self.min_heat, self.max_heat),
            ("min_bytes", self.min_bytes.map(|v| v as f64), self.max_bytes.map(|v| v as f64)),
        ];
        for (field, min, max) in ordered {
            if let (Some(min), Some(max)) = (min, max) {
                PolicyError::require(min <= max, POLICY, &f(field), || {
                    format!("is {min} but the matching max_ is {max}: no segment could match")
                })?;
            }
        }
        PolicyError::require(
            self.hot_fill_above.is_none_or(|w| w.is_finite() && (0.0..1.0).contains(&w)),
            POLICY,
            &f("hot_fill_above"),
            || format!("is {:?}: give a fraction from 0 up to (not including) 1, such as 0.9", self.hot_fill_above),
        )?;
        PolicyError::require(self.codec.as_deref().is_none_or(|c| !c.is_empty()), POLICY, &f("codec"), || {
            "is empty: name a codec such as \"zstd-19\"".into()
        })?;
        PolicyError::require(
            self.compact_target_bytes.is_none_or(|b| b > 0),
            POLICY,
            &f("compact_target_bytes"),
            || "is zero: give a target size in bytes".into(),
        )?;
        PolicyError::require(
            self.placement.is_some() || self.codec.is_some() || self.compact_target_bytes.is_some(),
            POLICY,
            &f("placement"),
            || "is missing, as are codec and compact_target_bytes: a rule must prescribe something".into(),
        )?;
        PolicyError::require(!self.force || self.placement.is_some(), POLICY, &f("force"), || {
            "is set without a placement: force only applies to placements".into()
        })
    }
}

/// Checks an ordered rule list: names unique, every rule valid. The error names the rule and its field.
pub fn validate_rules(rules: &[Rule]) -> Result<(), PolicyError> {
    let mut names = HashSet::new();
    for (i, rule) in rules.iter().enumerate() {
        rule.validate(i)?;
        PolicyError::require(names.insert(rule.name.as_str()), POLICY, &rule.field(i, "name"), || {
            "repeats an earlier rule's name: names must be unique".into()
        })?;
    }
    Ok(())
}

/// The first rule that matches `s` and prescribes the aspect `has` selects.
pub fn first_match<'r>(
    rules: &'r [Rule],
    s: &SegmentStats,
    cx: RuleContext,
    has: impl Fn(&Rule) -> bool,
) -> Option<&'r Rule> {
    rules.iter().find(|r| has(r) && r.matches(s, cx))
}

/// The rule set a bare `tierd serve` runs with: [`default_rules_idle_after`] a week, the daemon's default
/// `passes.migrate.cold_after_secs`.
pub fn default_rules() -> Vec<Rule> {
    default_rules_idle_after(7 * DAY_SECS)
}

/// The default rule set with data going cold `idle_after_secs` after its newest event: data read often comes back
/// hot (forced: read latency), data of the last day (or of the idle age, if
/// shorter: an operator asking for data cold after an hour gets it) stays hot, older columnar data
/// goes cold, and a hot disk more than 90 % full evicts its coldest columnar data. Codecs stay with the recompress
/// ladder (`[passes.recompress]`, whose last step comes before the idle age so that data goes cold at its
/// smallest), so the default set prescribes none.
///
/// The `idle` rule has no heat condition of its own: whether a segment past the idle age goes cold is a cost
/// decision, the planner's ([`crate::tiering`]): the storage it saves over the horizon must pay for the move *and*
/// for serving its current reads from the cold tier (GETs per block and retrieval of its heat_bytes), and its heat
/// must be at most the policy's `cold_max_heat`, a much looser ceiling kept for read latency and as the lower
/// edge of the hysteresis (data comes back hot at `hot_min_heat`).
pub fn default_rules_idle_after(idle_after_secs: u64) -> Vec<Rule> {
    vec![
        Rule {
            name: "read-often".into(),
            tier: Some(Placement::Cold),
            format: Some(SegmentFormat::Columnar),
            min_heat: Some(DEFAULT_HOT_MIN_HEAT),
            placement: Some(Placement::Hot),
            // Read latency, not only the read bill, justifies a promotion of data read this often.
            force: true,
            ..Rule::default()
        },
        Rule {
            name: "fresh".into(),
            max_age_secs: Some(DAY_SECS.min(idle_after_secs)),
            placement: Some(Placement::Hot),
            ..Rule::default()
        },
        Rule {
            name: "idle".into(),
            format: Some(SegmentFormat::Columnar),
            min_age_secs: Some(idle_after_secs),
            placement: Some(Placement::Cold),
            ..Rule::default()
        },
        Rule {
            name: "hot-disk-full".into(),
            tier: Some(Placement::Hot),
            format: Some(SegmentFormat::Columnar),
            hot_fill_above: Some(0.9),
            placement: Some(Placement::Cold),
            force: true,
            ..Rule::default()
        },
    ]
}

/// Default hysteresis, in reads per day of the daemon's heat (decayed with `[heat] half_life_secs`, 7 days by
/// default, so a rate averaged over about ten days): a segment past the idle age goes cold, if that pays, only
/// while read at most this often. Under list prices without a retrieval fee the cold reads of such a segment cost
/// far less than the storage it saves, so this ceiling, not the cost test, is what keeps warm data hot: it is there
/// for read latency. Half of [`DEFAULT_HOT_MIN_HEAT`]: the band between them, 3 reads/day, is several times the
/// heat's own noise at these rates (a Poisson rate of `r` reads/day estimated with a 7-day half-life has a standard
/// deviation of about `sqrt(r / 20)`: 0.4 at 3, 0.55 at 6), so a segment does not flap on noise. Measured against
/// the earlier 1 and 10, and other pairs, in BENCHMARKS.md, "Tiering simulation".
pub const DEFAULT_COLD_MAX_HEAT: f64 = 3.0;
/// ... and comes back hot (the forced `read-often` rule) once read at least this often: with a 7-day half-life, a
/// burst of about 60 reads of a segment within a day, such as an incident re-reading old days, reaches it (the
/// earlier 10 took about 100, which such bursts did not reach, so re-read days stayed cold).
pub const DEFAULT_HOT_MIN_HEAT: f64 = 6.0;

/// Glob match: `*` matches any run (also empty), `?` exactly one character, anything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{col, DAY_MS};

    const CX: RuleContext = RuleContext { now_ms: 10 * DAY_MS, hot_fill: Some(0.5) };

    #[test]
    fn globs() {
        assert!(glob("*", "") && glob("*", "web"));
        assert!(glob("web-*", "web-eu") && glob("web-*", "web-") && !glob("web-*", "web"));
        assert!(glob("w?b", "web") && !glob("w?b", "weeb"));
        assert!(glob("*-eu", "web-eu") && glob("a*b*c", "aXbYbZc") && !glob("a*b*c", "aXbY"));
        assert!(glob("web", "web") && !glob("web", "webs"));
    }

    #[test]
    fn conditions_are_inclusive_and_all_must_hold() {
        let s = SegmentStats {
            max_time_ms: 3 * DAY_MS,
            heat: 2.0,
            bytes: 100,
            project: "web-eu".into(),
            ..col("a", "lz4")
        };
        let r = |rule: Rule| Rule { placement: Some(Placement::Cold), ..rule }.matches(&s, CX);
        assert!(r(Rule::default()));
        assert!(r(Rule { min_age_secs: Some(7 * DAY_SECS), max_age_secs: Some(7 * DAY_SECS), ..Rule::default() }));
        assert!(!r(Rule { min_age_secs: Some(7 * DAY_SECS + 1), ..Rule::default() }));
        assert!(r(Rule {
            min_heat: Some(2.0),
            max_heat: Some(2.0),
            min_bytes: Some(100),
            max_bytes: Some(100),
            ..Rule::default()
        }));
        assert!(!r(Rule { max_heat: Some(1.9), ..Rule::default() }));
        assert!(r(Rule { project: Some("web-*".into()), tier: Some(Placement::Hot), ..Rule::default() }));
        assert!(!r(Rule { project: Some("api-*".into()), ..Rule::default() }));
        assert!(!r(Rule { format: Some(SegmentFormat::Rows), ..Rule::default() }));
        assert!(r(Rule { hot_fill_above: Some(0.4), ..Rule::default() }));
        assert!(!r(Rule { hot_fill_above: Some(0.5), ..Rule::default() }));
        let unknown = RuleContext { hot_fill: None, ..CX };
        assert!(!Rule { hot_fill_above: Some(0.0), ..Rule::default() }.matches(&s, unknown));
    }

    #[test]
    fn first_matching_rule_wins_per_aspect() {
        let rules = vec![
            Rule { name: "a".into(), codec: Some("zstd-3".into()), ..Rule::default() },
            Rule { name: "b".into(), placement: Some(Placement::Cold), ..Rule::default() },
            Rule {
                name: "c".into(),
                placement: Some(Placement::Hot),
                codec: Some("zstd-19".into()),
                ..Rule::default()
            },
        ];
        let s = col("s", "lz4");
        assert_eq!(first_match(&rules, &s, CX, |r| r.placement.is_some()).unwrap().name, "b");
        assert_eq!(first_match(&rules, &s, CX, |r| r.codec.is_some()).unwrap().name, "a");
        assert!(first_match(&rules, &s, CX, |r| r.compact_target_bytes.is_some()).is_none());
    }

    #[test]
    fn the_default_idle_age_wins_over_a_day_of_freshness_when_shorter() {
        let placement = |idle_after_secs: u64, age_secs: i64| {
            let s = SegmentStats { max_time_ms: CX.now_ms - age_secs * 1000, ..col("a", "zstd-19") };
            let rules = default_rules_idle_after(idle_after_secs);
            first_match(&rules, &s, CX, |r| r.placement.is_some()).map(|r| r.name.clone())
        };
        assert_eq!(placement(3600, 7200).as_deref(), Some("idle"), "cold after an hour means after an hour");
        assert_eq!(placement(3600, 1800).as_deref(), Some("fresh"));
        assert_eq!(placement(7 * DAY_SECS, 2 * DAY_SECS as i64), None, "between a day and the idle age: no rule");
        assert_eq!(placement(7 * DAY_SECS, 3600).as_deref(), Some("fresh"));
    }

    #[test]
    fn invalid_rules_name_the_rule_and_field() {
        let ok = || Rule { name: "r".into(), placement: Some(Placement::Cold), ..Rule::default() };
        validate_rules(&default_rules()).unwrap();
        validate_rules(&[ok()]).unwrap();
        let err = |rules: &[Rule]| validate_rules(rules).unwrap_err().to_string();
        let e = err(&[ok(), Rule { min_heat: Some(5.0), max_heat: Some(1.0), ..ok() }]);
        assert!(e.contains("rules[1] (\"r\").min_heat"), "{e}");
        let e = err(&[Rule { name: "x".into(), ..Rule::default() }]);
        assert!(e.contains("rules[0] (\"x\").placement") && e.contains("prescribe"), "{e}");
        assert!(err(&[ok(), ok()]).contains("rules[1] (\"r\").name"));
        assert!(err(&[Rule { hot_fill_above: Some(1.5), ..ok() }]).contains("hot_fill_above"));
        assert!(err(&[Rule { min_heat: Some(f64::NAN), ..ok() }]).contains("min_heat"));
        assert!(err(&[Rule { name: " ".into(), ..ok() }]).contains("rules[0].name"));
        assert!(err(&[Rule { codec: Some(String::new()), ..ok() }]).contains(".codec"));
        assert!(err(&[Rule { compact_target_bytes: Some(0), ..ok() }]).contains("compact_target_bytes"));
        assert!(err(&[Rule { force: true, placement: None, codec: Some("zstd-3".into()), ..ok() }]).contains("force"));
        assert!(err(&[Rule { project: Some(String::new()), ..ok() }]).contains("project"));
    }
}
