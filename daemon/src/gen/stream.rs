//! The event stream itself: the [`Generator`] that merges user sessions in time order and injects late arrivals
//! and at-least-once duplicates, one [`Emission`] at a time.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::{self, BufWriter, Write};

use rand::{Rng as _, RngCore as _, SeedableRng as _};
use rand_distr::{Distribution as _, Exp1, Geometric, Zipf};

use super::config::{GenConfig, GenConfigError, DAY_MS, HOUR_MS};
use super::diurnal::DiurnalClock;
use super::event::Event;
use super::kind::EventKind;
use super::profile::{platform_of, Platform};
use super::rng::{mix, StreamRng};

/// Zipf exponent of user activity: the busiest user has a few percent of all sessions, most users one or two.
const USER_ZIPF_EXPONENT: f64 = 0.7;
/// Zipf exponent of event names: "Page View" is about a quarter of the stream, "Refund" a fraction of a percent.
const NAME_ZIPF_EXPONENT: f64 = 1.0;
/// Mean events per session is `1 / SESSION_END_P`; sessions are cut at `MAX_SESSION_EVENTS`.
const SESSION_END_P: f64 = 1.0 / 8.0;
const MAX_SESSION_EVENTS: u64 = 100;
/// Gaps between a session's events: at least 2 s, exponential with this mean on top.
const MIN_GAP_MS: f64 = 2_000.0;
const MEAN_EXTRA_GAP_MS: f64 = 100_000.0;
/// A late arrival is between 1 hour and 3 days older than the newest on-time event (log-uniform).
const MAX_LATENESS_MS: i64 = 3 * DAY_MS;
/// A duplicate is re-sent once the stream has moved between 1 s and 30 min (log-uniform) past its original's time:
/// client retries after a timeout, not a replay of old data (that is what late events model).
const MIN_DUPLICATE_DELAY_MS: f64 = 1_000.0;
const MAX_DUPLICATE_DELAY_MS: f64 = 30.0 * 60_000.0;

/// Why a line is in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmissionKind {
    /// A new event, in time order with the other on-time events.
    OnTime,
    /// A new event whose time is at least an hour before the newest on-time event already written.
    Late,
    /// A byte-identical re-send of an earlier line.
    Duplicate,
}

/// One line of the stream and why it is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Emission {
    pub kind: EmissionKind,
    pub event: Event,
}

/// Counts over what a generator has emitted so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenSummary {
    /// Lines, duplicates included.
    pub events: u64,
    /// Distinct events (on-time and late).
    pub unique: u64,
    pub duplicates: u64,
    pub late: u64,
    /// Bytes written by [`Generator::write_ndjson`] (0 when the events were taken through the iterator).
    pub bytes: u64,
}

/// A user session in progress.
#[derive(Debug)]
struct ActiveSession {
    next_time: i64,
    /// Start order: breaks ties between sessions with the same `next_time` deterministically.
    seq: u64,
    user: u32,
    user_key: u64,
    session_key: u64,
    len: u64,
    emitted: u64,
}

/// A duplicate waiting for the stream to reach `due_ms`.
#[derive(Debug)]
struct PendingDuplicate {
    due_ms: i64,
    seq: u64,
    event: Event,
}

/// What the stream's queues are ordered by: a time, then a sequence number unique within the queue, so that the
/// order is total and the stream deterministic.
trait DueKey {
    fn due_key(&self) -> (i64, u64);
}

impl DueKey for ActiveSession {
    fn due_key(&self) -> (i64, u64) {
        (self.next_time, self.seq)
    }
}

impl DueKey for PendingDuplicate {
    fn due_key(&self) -> (i64, u64) {
        (self.due_ms, self.seq)
    }
}

/// A queue entry ordered so that a `BinaryHeap` (a max-heap) pops the smallest [`DueKey`] first; the entries
/// themselves are not comparable values.
#[derive(Debug)]
struct Earliest<T>(T);

impl<T: DueKey> PartialEq for Earliest<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.due_key() == other.0.due_key()
    }
}
impl<T: DueKey> Eq for Earliest<T> {}
impl<T: DueKey> PartialOrd for Earliest<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: DueKey> Ord for Earliest<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.due_key().cmp(&self.0.due_key())
    }
}

/// Cumulative weights of the event names by rank.
#[derive(Clone, Debug)]
struct NameTable {
    cumulative: Vec<f64>,
}

impl NameTable {
    fn new() -> Self {
        let mut total = 0.0;
        let cumulative = (0..EventKind::ALL.len())
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(NAME_ZIPF_EXPONENT);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut StreamRng) -> EventKind {
        let target = rng.random::<f64>() * self.cumulative[self.cumulative.len() - 1];
        let rank = self.cumulative.partition_point(|&c| c <= target).min(EventKind::ALL.len() - 1);
        EventKind::ALL[rank]
    }
}

/// The event stream: an iterator of [`Event`]s, or [`Generator::write_ndjson`] for the bytes.
///
/// Every line is one of: the next on-time event (sessions merged in time order), a late event, or a duplicate that
/// has come due. The number of duplicates is fixed up front (selection sampling over the originals), so the line
/// count is exact and [`GenConfig::unique_events`] is known before generating.
#[derive(Debug)]
pub struct Generator {
    config: GenConfig,
    rng: StreamRng,
    clock: DiurnalClock,
    names: NameTable,
    users: Zipf<f64>,
    user_count: u64,
    /// `user = (rank * user_stride + user_offset) % user_count`: spreads the heavy users over the id space.
    user_stride: u64,
    user_offset: u64,
    session_len: Geometric,
    seed_key: u64,
    token: Option<u128>,
    unique: u64,
    duplicates: u64,
    /// Lines emitted so far.
    emitted: u64,
    /// Original (on-time or late) events emitted so far.
    originals: u64,
    late: u64,
    duplicates_scheduled: u64,
    /// Original events already given a place: events of started sessions plus late events.
    mass: u64,
    sessions_started: u64,
    next_session_start: i64,
    /// Time of the newest on-time event emitted.
    stream_time: i64,
    sessions: BinaryHeap<Earliest<ActiveSession>>,
    pending_duplicates: BinaryHeap<Earliest<PendingDuplicate>>,
}

impl Generator {
    pub fn new(config: GenConfig) -> Result<Self, GenConfigError> {
        config.validate()?;
        let mut rng = StreamRng::seed_from_u64(config.seed);
        let seed_key = rng.next_u64();
        let token = config.project_token.then(|| u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()));
        let user_count = config.user_count();
        let mut user_stride = ((seed_key >> 17) % user_count) | 1;
        while gcd(user_stride, user_count) != 1 {
            user_stride += 1;
        }
        let user_offset = (seed_key >> 3) % user_count;
        let clock = DiurnalClock::new(config.start_ms, config.days);
        Ok(Self {
            users: Zipf::new(user_count as f64, USER_ZIPF_EXPONENT).expect("user count >= 1, exponent >= 0"),
            session_len: Geometric::new(SESSION_END_P).expect("probability in (0, 1]"),
            names: NameTable::new(),
            user_count,
            user_stride,
            user_offset,
            seed_key,
            token,
            unique: config.unique_events(),
            duplicates: config.duplicate_events(),
            emitted: 0,
            originals: 0,
            late: 0,
            duplicates_scheduled: 0,
            mass: 0,
            sessions_started: 0,
            next_session_start: clock.time_at(0.0),
            stream_time: config.start_ms,
            sessions: BinaryHeap::new(),
            pending_duplicates: BinaryHeap::new(),
            clock,
            rng,
            config,
        })
    }

    pub fn config(&self) -> &GenConfig {
        &self.config
    }

    /// Counts over the lines emitted so far (`bytes` is 0: only [`Generator::write_ndjson`] knows bytes).
    pub fn summary(&self) -> GenSummary {
        GenSummary {
            events: self.emitted,
            unique: self.originals,
            duplicates: self.emitted - self.originals,
            late: self.late,
            bytes: 0,
        }
    }

    /// The next line of the stream with the reason it is there; `None` after `config.events` lines.
    pub fn next_emission(&mut self) -> Option<Emission> {
        if self.emitted >= self.config.events {
            return None;
        }
        let originals_left = self.unique - self.originals;
        if let Some(Earliest(due)) = self.pending_duplicates.peek() {
            if due.due_ms <= self.stream_time || originals_left == 0 {
                let Earliest(due) = self.pending_duplicates.pop().expect("peeked");
                self.emitted += 1;
                return Some(Emission { kind: EmissionKind::Duplicate, event: due.event });
            }
        }
        // Every duplicate is scheduled by the time the last original goes out, so lines remain only while
        // originals or pending duplicates do.
        debug_assert!(originals_left > 0);
        let late = if self.mass < self.unique && self.rng.random_bool(self.config.late_rate) {
            self.late_event()
        } else {
            None
        };
        let emission = match late {
            Some(event) => {
                self.mass += 1;
                self.late += 1;
                Emission { kind: EmissionKind::Late, event }
            }
            None => Emission { kind: EmissionKind::OnTime, event: self.next_on_time() },
        };
        self.maybe_schedule_duplicate(emission.event, originals_left);
        self.originals += 1;
        self.emitted += 1;
        Some(emission)
    }

    /// Writes the rest of the stream as NDJSON, one event per line, and returns the counts (`bytes` is what this
    /// call wrote). Buffered internally: pass the file or stdout itself.
    pub fn write_ndjson<W: Write>(&mut self, out: W) -> io::Result<GenSummary> {
        let mut out = BufWriter::with_capacity(1 << 20, CountingWriter { inner: out, bytes: 0 });
        while let Some(emission) = self.next_emission() {
            serde_json::to_writer(&mut out, &emission.event)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        let bytes = out.get_ref().bytes;
        Ok(GenSummary { bytes, ..self.summary() })
    }

    /// The rest of the stream as `serde_json::Value`s (see [`Event::to_value`] for the key order caveat).
    pub fn into_values(self) -> impl Iterator<Item = serde_json::Value> {
        self.map(|event| event.to_value())
    }

    /// Selection sampling (Knuth's algorithm S): each original is picked with probability
    /// `still needed / originals left`, which picks exactly `duplicates` of the `unique` originals.
    fn maybe_schedule_duplicate(&mut self, event: Event, originals_left: u64) {
        let needed = self.duplicates - self.duplicates_scheduled;
        if needed == 0 || self.rng.random_range(0..originals_left) >= needed {
            return;
        }
        let delay = log_uniform(&mut self.rng, MIN_DUPLICATE_DELAY_MS, MAX_DUPLICATE_DELAY_MS) as i64;
        self.pending_duplicates.push(Earliest(PendingDuplicate {
            due_ms: event.time_ms.max(self.stream_time) + delay,
            seq: self.duplicates_scheduled,
            event,
        }));
        self.duplicates_scheduled += 1;
    }

    /// The next on-time event: starts the sessions due by then, then takes the earliest pending session event.
    fn next_on_time(&mut self) -> Event {
        loop {
            let start_first = self.mass < self.unique
                && self.sessions.peek().is_none_or(|Earliest(s)| self.next_session_start <= s.next_time);
            if start_first {
                self.start_session();
                continue;
            }
            // Invariant: events pending in sessions + unplaced mass == originals still to emit, and this is only
            // called while one is left.
            let Earliest(mut session) = self.sessions.pop().expect("a started session has an event left");
            let event = self.session_event(&session);
            session.emitted += 1;
            if session.emitted < session.len {
                session.next_time = self.next_in_session(session.next_time);
                self.sessions.push(Earliest(session));
            }
            self.stream_time = event.time_ms;
            return event;
        }
    }

    fn start_session(&mut self) {
        let len = (1 + self.session_len.sample(&mut self.rng)).min(MAX_SESSION_EVENTS).min(self.unique - self.mass);
        let (user, user_key) = self.draw_user();
        let seq = self.sessions_started;
        self.sessions.push(Earliest(ActiveSession {
            next_time: self.next_session_start,
            seq,
            user,
            user_key,
            session_key: mix(self.seed_key ^ 0x5E55_1010, seq),
            len,
            emitted: 0,
        }));
        self.sessions_started += 1;
        self.mass += len;
        self.next_session_start = self.clock.time_at(self.mass as f64 / self.unique as f64);
    }

    fn draw_user(&mut self) -> (u32, u64) {
        let rank = (self.users.sample(&mut self.rng) as u64).clamp(1, self.user_count) - 1;
        let user = (rank * self.user_stride + self.user_offset) % self.user_count;
        (user as u32, mix(self.seed_key, user))
    }

    /// The time of a session's next event: a gap of minutes, squeezed to stay inside the window.
    fn next_in_session(&mut self, t: i64) -> i64 {
        let extra: f64 = Exp1.sample(&mut self.rng);
        let gap = (MIN_GAP_MS + extra * MEAN_EXTRA_GAP_MS) as i64;
        let end = self.clock.end_ms();
        if t + gap < end {
            t + gap
        } else {
            t + (end - 1 - t) / 2
        }
    }

    fn session_event(&mut self, session: &ActiveSession) -> Event {
        let platform = platform_of(session.user_key);
        let kind = if session.emitted == 0 {
            if platform == Platform::Web {
                EventKind::PageView
            } else {
                EventKind::AppOpen
            }
        } else {
            self.draw_kind(platform)
        };
        self.event(kind, session.next_time, session.user, session.user_key, session.session_key)
    }

    /// A late arrival: an event from an earlier moment (offline device, delayed batch), at least an hour older than
    /// the newest on-time event; `None` while the stream is less than an hour into the window.
    fn late_event(&mut self) -> Option<Event> {
        let room = self.stream_time - self.config.start_ms;
        if room < HOUR_MS {
            return None;
        }
        let lateness = log_uniform(&mut self.rng, HOUR_MS as f64, room.min(MAX_LATENESS_MS) as f64) as i64;
        let time = (self.stream_time - lateness).max(self.config.start_ms);
        let (user, user_key) = self.draw_user();
        let kind = self.draw_kind(platform_of(user_key));
        let session_key = mix(self.seed_key ^ 0x1A7E, self.late);
        Some(self.event(kind, time, user, user_key, session_key))
    }

    fn draw_kind(&mut self, platform: Platform) -> EventKind {
        let kind = self.names.sample(&mut self.rng);
        match platform {
            Platform::Web if kind.mobile_only() => EventKind::PageView,
            Platform::Ios | Platform::Android if kind == EventKind::PageView => EventKind::ScreenView,
            _ => kind,
        }
    }

    fn event(&mut self, kind: EventKind, time_ms: i64, user: u32, user_key: u64, session_key: u64) -> Event {
        let insert_id = u128::from(self.rng.next_u64()) << 64 | u128::from(self.rng.next_u64());
        Event {
            kind,
            time_ms,
            user,
            user_key,
            session_key,
            insert_id,
            detail_seed: self.rng.next_u64(),
            token: self.token,
        }
    }
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.next_emission().map(|e| e.event)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.config.events - self.emitted).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Generator {}

fn log_uniform(rng: &mut StreamRng, lo: f64, hi: f64) -> f64 {
    if hi <= lo {
        return lo;
    }
    lo * (hi / lo).powf(rng.random::<f64>())
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
